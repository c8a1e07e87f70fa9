//! `edgenlu serve`: the device pipeline and the chat skill over HTTP.

use crate::pipeline::{DeviceArgs, SkillsArgs};
use anyhow::Result;
use edgenlu::bundled;
use edgenlu::Runtime;
use edgenlu_models::store::ModelStore;

/// What `edgenlu serve` answers with: the pipeline over the skills `args` names (by default
/// the installed skill `intents` if there is one, else the default datastore), run by the
/// installed flow (followed: a new one is served from the next request), and the chat skill.
fn serve_skills(
    rt: &Runtime,
    store: &ModelStore,
    args: &SkillsArgs,
    phrase: bool,
    device: DeviceArgs,
) -> Result<edgenlu_serve::Skills> {
    let installed = edgenlu_trust::skills::SkillStore::at(store.root())?;
    let mut args = args.or_installed(&installed, "intents")?;
    // The live pipeline loads and follows the installed flow itself.
    let follow_flow = !args.bundled_flow;
    args.bundled_flow = true;
    let pipeline = crate::pipeline::pipeline(rt, store, &args, phrase)?;
    let mut nlu = edgenlu_serve::LivePipeline::new(pipeline, installed, rt.clone());
    if follow_flow {
        nlu = nlu.following_flow(crate::flows::flow_store(store)?);
    }
    let decoder = bundled::DEFAULT_DECODER.to_string();
    Ok(edgenlu_serve::Skills {
        nlu,
        device: device.state(),
        chat: std::sync::Arc::new(
            rt.load_skill(bundled::chat_skill(&decoder, bundled::chat_limits()))?,
        ),
        decoder,
        // The update agent's last sync, read from the store at each scrape.
        extra_metrics: Some({
            let root = store.root().to_path_buf();
            std::sync::Arc::new(move || edgenlu_fleet::status::prometheus_of(&root))
        }),
    })
}

/// `edgenlu serve`: answers until SIGTERM or SIGINT, then drains the requests in flight.
pub fn run(
    store: &ModelStore,
    skills: &SkillsArgs,
    phrase: bool,
    device: DeviceArgs,
    config: &edgenlu_serve::ServeConfig,
) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let rt = crate::runtime(store.clone())?;
    let skills = serve_skills(&rt, store, skills, phrase, device)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [SIGTERM, SIGINT] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let server = edgenlu_serve::Server::start(config, skills)?;
    eprintln!("edgenlu serving on http://{}", server.addr());
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    eprintln!("draining requests in flight");
    server.shutdown();
    Ok(())
}
