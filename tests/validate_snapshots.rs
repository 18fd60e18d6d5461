//! What a person sees: the human output of a few typical mistakes, pinned with insta so a change
//! to a message or a snippet shows up in review.

mod common;

use common::{ion_plan, root};

fn human(fixture: &str) -> String {
    let output = ion_plan()
        .arg("validate")
        .arg(format!("tests/fixtures/invalid/{fixture}.yaml"))
        .current_dir(root())
        .run();
    assert_eq!(output.code, 2);
    output.stdout
}

#[test]
fn unknown_key_with_suggestion() {
    insta::assert_snapshot!(human("schema/unknown-key-typo"));
}

#[test]
fn traffic_written_as_a_percentage_string() {
    insta::assert_snapshot!(human("schema/traffic-percent-string"));
}

#[test]
fn metric_the_probe_cannot_produce() {
    insta::assert_snapshot!(human("semantic/unknown-metric"));
}

#[test]
fn threshold_in_the_wrong_unit() {
    insta::assert_snapshot!(human("semantic/unit-duration-on-ratio"));
}

#[test]
fn missing_script() {
    insta::assert_snapshot!(human("semantic/missing-script"));
}

#[test]
fn crontab_with_a_seconds_field() {
    insta::assert_snapshot!(human("semantic/window-six-fields"));
}

#[test]
fn tabs_for_indentation() {
    insta::assert_snapshot!(human("yaml/tab-indentation"));
}

#[test]
fn probe_the_plan_does_not_define() {
    insta::assert_snapshot!(human("semantic/unknown-probe-in-condition"));
}

#[test]
fn mistakes_in_two_layers_at_once() {
    insta::assert_snapshot!(human("multi/four-mistakes"));
}

#[test]
fn confidence_on_a_ratio_without_its_count() {
    insta::assert_snapshot!(human("semantic/confidence-ratio-without-count"));
}
