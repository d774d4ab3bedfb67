//! ROB-01 (9): server configuration parsing: the TOML config file (as `tessera serve --config`
//! resolves it) and per-app `coreConfig` overrides (`apply_app_settings`, what
//! `PUT /recipe/multitenancy/app/v2` feeds in; that route is not in `cdi_body` because every
//! new app generates an RSA key).
//!
//! Properties: no panic; the `Debug` form of an accepted configuration does not depend on the
//! API keys or the static signing key (ROB-05); error messages never echo an API key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use tessera_server::config::{apply_app_settings, AppSettings};
use tessera_server::fuzzing::resolve_config_toml;

fn swap_keys(keys: &Option<Vec<String>>) -> Option<Vec<String>> {
    keys.as_ref()
        .map(|k| k.iter().map(|_| "X".repeat(24)).collect())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match resolve_config_toml(text) {
        Ok(config) => {
            // Debug must not depend on the secrets: swap them and compare.
            let mut other = config.clone();
            other.app.api_keys = swap_keys(&config.app.api_keys);
            other.static_signing_key = config.static_signing_key.as_ref().map(|_| "Y".into());
            assert_eq!(
                format!("{other:?}"),
                format!("{config:?}"),
                "Debug shows a secret"
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }

    // coreConfig: a JSON object whose values are taken as text, as the registry does.
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) {
        let overrides: BTreeMap<String, String> = map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s),
                other => (k, other.to_string()),
            })
            .collect();
        match apply_app_settings(&AppSettings::default(), &overrides, false) {
            Ok(settings) => {
                let mut other = settings.clone();
                other.api_keys = swap_keys(&settings.api_keys);
                assert_eq!(
                    format!("{other:?}"),
                    format!("{settings:?}"),
                    "Debug shows a key"
                );
            }
            Err(e) => {
                // What the message says for any bad key; a "key" that is part of that text
                // is not an echo.
                let mut probe = BTreeMap::new();
                probe.insert("api_keys".to_owned(), "x".to_owned());
                let template = apply_app_settings(&AppSettings::default(), &probe, false)
                    .err()
                    .map(|e| e.0)
                    .unwrap_or_default();
                if let Some(keys) = overrides.get("api_keys") {
                    let keys = keys.split(',').map(str::trim);
                    for k in keys.filter(|k| k.len() >= 8 && !template.contains(k)) {
                        assert!(!e.0.contains(k), "API key echoed in an error: {e}");
                    }
                }
            }
        }
    }
});
