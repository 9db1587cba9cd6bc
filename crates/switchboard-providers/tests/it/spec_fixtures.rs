//! The spec fixtures the conformance tests read (`fixtures/specs/`): each names the published
//! spec it was distilled from, and pruning left no reference dangling, so a validator never
//! compiles a schema with a hole in it.

use crate::support;

use serde_json::Value;

/// Every fixture, by file name, loaded through the loader the conformance tests use.
fn fixtures() -> Vec<(String, Value)> {
    let folder = support::spec_path("");
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("{}: {error}", folder.display()))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names.into_iter().map(|name| (name.clone(), support::load_spec(&name))).collect()
}

/// Every local reference in `node`: `$ref` values and discriminator mappings.
fn references<'a>(node: &'a Value, found: &mut Vec<&'a str>) {
    match node {
        Value::Object(map) => {
            for (key, value) in map {
                match value.as_str() {
                    Some(reference) if reference.starts_with("#/") => found.push(reference),
                    Some(reference) if key == "$ref" => panic!("external reference {reference}"),
                    _ => references(value, found),
                }
            }
        }
        Value::Array(values) => values.iter().for_each(|value| references(value, found)),
        _ => {}
    }
}

#[test]
fn every_fixture_names_its_source() {
    let fixtures = fixtures();
    assert_eq!(
        fixtures.len(),
        9,
        "{:?}",
        fixtures.iter().map(|(name, _)| name).collect::<Vec<_>>()
    );
    for (name, spec) in &fixtures {
        let source = &spec["x-distilled-from"];
        for field in ["title", "version", "repository", "path", "pruned"] {
            assert!(source[field].as_str().is_some_and(|text| !text.is_empty()), "{name}: {field}");
        }
        assert!(source["url"].as_str().unwrap().starts_with("https://github.com/"), "{name}");
        let sha256 = source["sha256"].as_str().unwrap_or_default();
        assert!(sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
    }
}

#[test]
fn pruning_left_no_reference_dangling() {
    for (name, spec) in fixtures() {
        let mut found = Vec::new();
        references(&spec, &mut found);
        for reference in &found {
            let pointer = reference.trim_start_matches('#');
            assert!(spec.pointer(pointer).is_some(), "{name}: {reference} dangles");
        }
        // Botocore names shapes rather than pointing at them.
        if let Some(shapes) = spec["shapes"].as_object() {
            let mut targets: Vec<&Value> = spec["operations"]
                .as_object()
                .unwrap()
                .values()
                .flat_map(|operation| {
                    let errors = operation["errors"].as_array().into_iter().flatten();
                    [&operation["input"], &operation["output"]].into_iter().chain(errors)
                })
                .collect();
            for shape in shapes.values() {
                targets.extend(["member", "key", "value"].map(|key| &shape[key]));
                targets.extend(shape["members"].as_object().into_iter().flat_map(|m| m.values()));
            }
            for target in targets.into_iter().filter_map(|target| target["shape"].as_str()) {
                assert!(shapes.contains_key(target), "{name}: shape {target} dangles");
            }
            found.push("shapes");
        }
        assert!(!found.is_empty(), "{name}: nothing checked");
    }
}

#[test]
#[should_panic(expected = "spec fixture")]
fn a_missing_fixture_fails_the_test_that_needs_it() {
    support::load_spec("no-such-provider-openapi.json");
}
