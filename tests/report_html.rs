//! The HTML report: one self-contained page with a chart per gate condition. Checked as text
//! (nothing fetched, no script, a chart per condition) and in a real browser: Debian's
//! Chromium, headless, renders the demo's report to a screenshot that must not be blank, and its
//! DOM must hold each chart's threshold line and points.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ion_plan, journal_records};
use ion_plan::event::Event;

/// Runs `ion-plan demo` (a bad canary when asked) in a fresh folder; the folder and the HTML
/// report it wrote beside the journal.
fn demo(bad_canary: bool) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["demo"];
    if bad_canary {
        args.push("--bad-canary");
    }
    let output = ion_plan().args(args).current_dir(dir.path()).run();
    assert!(output.code == 0 || output.code == 3, "{}", output.stderr);
    let html = output
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("report: "))
        .filter_map(|l| l.split(' ').next())
        .find(|p| p.ends_with(".report.html"))
        .unwrap_or_else(|| panic!("no HTML report named: {}", output.stderr));
    let path = dir.path().join(html);
    (dir, path)
}

/// The (gate, condition) pairs the journal in `dir` evaluated in its stages.
fn conditions(dir: &Path) -> BTreeSet<(String, String)> {
    journal_records(&dir.join(".ion-plan"))
        .into_iter()
        .filter_map(|r| match r.event {
            Event::Evaluated {
                stage: Some(_),
                evaluation,
                ..
            } => Some((evaluation.gate, evaluation.condition)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_report_is_one_page_with_a_chart_per_condition_and_nothing_fetched() {
    let (dir, path) = demo(true);
    let html = std::fs::read_to_string(&path).unwrap();
    // Self-contained: no script, no external stylesheet, image or font.
    for banned in [
        "<script", "src=", "href=", "@import", "url(", "http://", "https://",
    ] {
        assert!(!html.contains(banned), "{banned} in the report");
    }
    let expected = conditions(dir.path());
    assert!(!expected.is_empty());
    assert_eq!(html.matches("<svg class=\"chart\"").count(), expected.len());
    for (gate, condition) in &expected {
        let attr = |t: &str| {
            t.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        let attrs = format!(
            "data-gate=\"{}\" data-condition=\"{}\"",
            attr(gate),
            attr(condition)
        );
        assert!(html.contains(&attrs), "no chart for {gate}: {condition}");
    }
    // The summary leads: the outcome and the rule that decided it.
    let outcome = html.find("id=\"outcome\">rolled back<").expect("outcome");
    let why = html
        .find("id=\"why\">gate `guard` failed")
        .expect("the deciding rule");
    assert!(outcome < why && why < html.find("<svg").unwrap());
    // The point where the guard fired, and its marker.
    assert!(html.contains("class=\"point fired\""), "no fired point");
    assert!(html.contains("class=\"marker marker-fired\""));
    assert!(html.contains("class=\"marker marker-rollback\""));
    // The same page from `ion-plan report --format html`.
    let again = ion_plan()
        .args(["report", "plans/demo.yaml", "--state-dir", ".ion-plan"])
        .args(["--format", "html"])
        .current_dir(dir.path())
        .run();
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout, html);
}

/// Chromium headless with the flags this machine needs (no sandbox as root, no network
/// chatter), a fresh profile each time.
fn chromium(args: &[&str], profile: &Path) -> std::process::Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs")
}

#[test]
#[ignore = "needs Debian's chromium; .ci/run installs it"]
fn chromium_renders_the_demo_report_with_its_charts() {
    let (dir, path) = demo(false);
    let url = format!("file://{}", path.display());
    let profile = tempfile::tempdir().unwrap();

    // The DOM as the browser parsed it: a chart per condition, each with its threshold line
    // and a point per evaluation.
    let dom = chromium(&["--dump-dom", &url], profile.path());
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8(dom.stdout).unwrap();
    let expected = conditions(dir.path());
    let charts: Vec<&str> = dom.split("<svg class=\"chart\"").skip(1).collect();
    assert_eq!(charts.len(), expected.len(), "{dom}");
    for chart in &charts {
        let chart = &chart[..chart.find("</svg>").unwrap()];
        assert!(chart.contains("class=\"threshold\""), "{chart}");
        assert!(
            chart.matches("<circle class=\"point ").count() >= 2,
            "{chart}"
        );
    }

    // A screenshot at 1280 px: not blank — many pixels off-white, in several colours.
    let png = dir.path().join("report.png");
    let shot = chromium(
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,2000",
            &url,
        ],
        profile.path(),
    );
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(info.width, 1280);
    let channels = info.color_type.samples();
    let (mut inked, mut colours) = (0usize, BTreeSet::new());
    for pixel in pixels[..info.buffer_size()].chunks(channels) {
        if pixel[..3].iter().any(|c| *c < 235) {
            inked += 1;
        }
        colours.insert((pixel[0] >> 4, pixel[1] >> 4, pixel[2] >> 4));
    }
    let total = (info.width * info.height) as usize;
    assert!(
        inked * 50 > total,
        "{inked} of {total} pixels inked: blank?"
    );
    assert!(colours.len() > 12, "{} colours: blank?", colours.len());
    // Kept for the README's screenshot (`docs/report.png`), when asked.
    if let Some(to) = std::env::var_os("ION_PLAN_REPORT_SCREENSHOT") {
        std::fs::copy(&png, to).unwrap();
    }
}
