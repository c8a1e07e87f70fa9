//! `edgenlu skill test DIR`: the project's utterance tests against the component `skill
//! build` made, loaded with exactly the grants of the manifest it wrote.

use super::project::Project;
use anyhow::{bail, Context, Result};
use edgenlu::Runtime;
use edgenlu_device::installed::ManifestGrants;
use edgenlu_train::datastore::Example;
use edgenlu_trust::manifest::Manifest;
use std::path::Path;

/// Runs every test of the project; an error when one fails.
pub fn test(rt: &Runtime, dir: &Path) -> Result<()> {
    let project = Project::open(dir)?;
    let tests = super::build::read(&project, &project.data()?.tests)?;
    let manifest_path = project.manifest_path();
    let bytes = std::fs::read(&manifest_path).with_context(|| {
        format!(
            "reading {} (run `edgenlu skill build {}` first)",
            manifest_path.display(),
            dir.display()
        )
    })?;
    let manifest =
        Manifest::parse(&bytes).with_context(|| format!("checking {}", manifest_path.display()))?;
    let skill = rt.load_skill(manifest.skill_spec(&project.component_path()))?;
    let mut failed = 0;
    for t in &tests {
        let verdict = match skill.handle(&t.text) {
            Ok(answer) => mismatch(t, &answer.response),
            Err(e) => Some(format!("failed: {e}")),
        };
        match verdict {
            None => println!("ok    {:?} -> {}", t.text, t.intent),
            Some(why) => {
                failed += 1;
                println!("FAIL  {:?}: {why}", t.text);
            }
        }
    }
    println!(
        "{}: {} passed, {failed} failed",
        project.skill.name,
        tests.len() - failed
    );
    if failed > 0 {
        bail!("{failed} of {} utterance tests failed", tests.len());
    }
    Ok(())
}

/// How the answer differs from what the test expects: the intent, and each expected slot's
/// value (other slots the skill finds are not held against it).
fn mismatch(t: &Example, r: &edgenlu::Response) -> Option<String> {
    if r.intent != t.intent {
        return Some(format!(
            "expected intent {}, got {} ({:.2})",
            t.intent, r.intent, r.confidence
        ));
    }
    let chars: Vec<char> = t.text.chars().collect();
    for want in &t.slots {
        let value: String = chars[want.start..want.end].iter().collect();
        if !r
            .slots
            .iter()
            .any(|s| s.name == want.slot && s.value == value)
        {
            let got: Vec<String> = r
                .slots
                .iter()
                .map(|s| format!("{}={:?}", s.name, s.value))
                .collect();
            return Some(format!(
                "expected slot {}={value:?}, got [{}]",
                want.slot,
                got.join(", ")
            ));
        }
    }
    None
}
