//! What a guest's log calls make of the host's log, captured from its tracing output: each
//! message is one line naming its skill, with every control, bidi and other hidden character
//! escaped, and a flood is cut to the skill's line rate (shared by all its requests), with
//! the count of what was dropped on the next line let through.

use edgenlu::Limits;
use edgenlu_tests::runtime;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::util::SubscriberInitExt;

/// Lines the flood may write at once.
const BURST: u32 = 50;
/// Lines each `log-flood` request tries to write (`FLOOD_LINES` in guest/hostile).
const FLOOD_LINES: u64 = 1000;

/// Everything the host logs on this thread, as its formatter writes it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("the log is UTF-8")
    }
}

/// The number after `dropped=` on `line`.
fn dropped(line: &str) -> Option<u64> {
    let rest = &line[line.find("dropped=")? + "dropped=".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[test]
fn hostile_log_calls_become_escaped_rate_limited_lines_naming_the_skill() {
    let rt = runtime();
    let limits = Limits {
        log_lines_per_second: 1,
        log_burst: BURST,
        ..Limits::default()
    };
    let hostile = edgenlu_tests::load_hostile(&rt, limits);
    let captured = Captured::default();
    let writer = captured.clone();
    let _log = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(LevelFilter::TRACE)
        .finish()
        .set_default();
    let answer = |attack: &str| hostile.handle(attack).unwrap().response.intent;

    assert_eq!(answer("log-forge-newline"), "logged");
    assert_eq!(answer("log-controls"), "logged");
    // Two floods, two instances: the second gets no fresh burst.
    assert_eq!(answer("log-flood"), "flooded");
    assert_eq!(answer("log-flood"), "flooded");
    // A second later the bucket has a line again, and the first line says what was dropped.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(answer("log-forge-newline"), "logged");

    let log = captured.text();
    let lines: Vec<&str> = log.lines().collect();
    for line in &lines {
        assert!(
            line.contains("component=hostile"),
            "a line without its skill: {line:?}"
        );
        assert!(
            !line.starts_with("2026-01-01T"),
            "the forged line began a line of its own: {line:?}"
        );
        let hidden = line.chars().find(|c| {
            c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        });
        assert_eq!(hidden, None, "a hidden character reached the log: {line:?}");
    }
    let forged = lines
        .iter()
        .filter(|l| l.contains(r"loading\n2026-01-01T00:00:00.000000Z  INFO edgenlu::trust"))
        .count();
    assert_eq!(
        forged, 2,
        "the forged message, escaped on one line, twice:\n{log}"
    );
    for escaped in [
        r"progress 10%\rcapability",
        r"before\0after",
        r"report\u{202e}txt.exe",
        r"isolate \u{2066}hidden\u{2069} mark \u{200e}\u{200f}\u{61c}",
        r"\u{1b}[2K\u{1b}[1Aerased the line above\u{7f}\u{85}",
    ] {
        assert!(log.contains(escaped), "{escaped} is not in the log:\n{log}");
    }
    let flooded = lines.iter().filter(|l| l.contains(" flood ")).count() as u64;
    assert!(
        (1..=u64::from(BURST) + 2).contains(&flooded),
        "{flooded} flood lines got through a burst of {BURST}"
    );
    let reports: Vec<u64> = lines.iter().filter_map(|l| dropped(l)).collect();
    assert_eq!(
        reports.iter().sum::<u64>() + flooded,
        2 * FLOOD_LINES,
        "every flood line is written or counted as dropped: {reports:?}"
    );
    let last_report = lines.iter().rposition(|l| dropped(l).is_some()).unwrap();
    assert!(
        lines[last_report + 1].contains(r"loading\n"),
        "the drop count comes just before the line let through"
    );
}
