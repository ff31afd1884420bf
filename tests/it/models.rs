//! The shipped models (`models/`): every model file has a card in `models/README.md` whose
//! sha256 is the file's, and whose integer accuracy is the one its run's summary recorded.

use sha2::{Digest, Sha256};
use std::path::Path;

/// `(file name, card text)` per `## \`NAME\`` section of the cards.
fn cards(readme: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in readme.lines() {
        if let Some(name) = line.strip_prefix("## `").and_then(|r| r.strip_suffix('`')) {
            out.push((name.to_string(), String::new()));
        } else if let Some((_, text)) = out.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    out
}

/// The value in the card's `| field | value |` row, without backquotes.
fn field<'a>(card: &'a str, name: &str) -> Option<&'a str> {
    card.lines()
        .find_map(|l| l.strip_prefix(&format!("| {name} | ")))
        .map(|v| v.trim_end_matches(" |").trim_matches('`'))
}

#[test]
fn every_model_has_a_card_with_its_sha256_and_integer_accuracy() {
    let dir = Path::new("models");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let cards = cards(&readme);
    let mut models: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !n.ends_with(".summary.json"))
        .collect();
    models.sort();
    assert!(!models.is_empty());
    for name in &models {
        let (_, card) = cards
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("models/{name} has no card in models/README.md"));
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let sha: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(field(card, "sha256"), Some(sha.as_str()), "models/{name}");
        // The card states the integer accuracy its run's summary recorded.
        let summary = dir.join(name.replace(".json", ".summary.json"));
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
        // `train` writes `integer_accuracy`, `convert` `exported.integer`.
        let integer = 100.0
            * s["integer_accuracy"]
                .as_f64()
                .or_else(|| s["exported"]["integer"].as_f64())
                .unwrap_or_else(|| panic!("{}: no integer accuracy", summary.display()));
        let accuracy = field(card, "accuracy").unwrap();
        assert!(
            accuracy.contains(&format!("integer (golden model) {integer:.2} %")),
            "models/{name}: card says `{accuracy}`, summary {integer:.2} %"
        );
    }
}
