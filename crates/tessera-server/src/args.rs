//! Reading the command line without ever printing key material (SEC2-L9). clap quotes
//! arguments in its error messages ("unexpected argument '…'", "to pass '…' as a value"); a
//! key given on the command line would land in the terminal, the shell's scroll-back and any
//! log collecting stderr. Argument errors are rendered here with every secret the command
//! line holds removed, and withheld whole if any piece of one survives.

use crate::config::Cli;
use clap::Parser;
use std::ffi::OsString;

/// Flags whose value is a secret: keys, and the database URL (it may hold a password).
const SECRET_FLAGS: &[&str] = &[
    "--static-signing-key",
    "--previous-static-signing-keys",
    "--anonymous-signing-key",
    "--previous-anonymous-signing-keys",
    "--api-keys",
    "--admin-key",
    "--database-url",
];

/// Arguments at least this long are treated as secrets wherever they appear: no flag value
/// but a key is that long, and a key given without its flag is still a key.
const LONG_ARGUMENT: usize = 100;

/// Shortest piece of a secret looked for in an error message.
const PIECE: usize = 12;

/// Why the command line was not accepted.
#[derive(Debug)]
pub enum ArgsOutcome {
    /// `--help` or `--version`: print this on stdout and exit 0.
    Info(String),
    /// An argument error, safe to print on stderr (exit 2).
    Error(String),
}

/// Parses `args` (the program name first) into a [`Cli`].
///
/// ```
/// use tessera_server::args::{parse, ArgsOutcome};
/// let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";
/// let Err(ArgsOutcome::Error(text)) =
///     parse(["tessera", "serve", "--static-signing-key", pem, "--bogus"])
/// else {
///     panic!("--bogus is refused")
/// };
/// assert!(text.contains("--bogus"));
/// assert!(!text.contains("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"));
/// ```
///
/// # Errors
/// [`ArgsOutcome::Info`] for help and version text, [`ArgsOutcome::Error`] for anything clap
/// refuses, with secrets removed.
pub fn parse<I, T>(args: I) -> Result<Cli, ArgsOutcome>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    match Cli::try_parse_from(&args) {
        Ok(cli) => Ok(cli),
        Err(e) if !e.use_stderr() => Err(ArgsOutcome::Info(e.render().to_string())),
        Err(e) => Err(ArgsOutcome::Error(without_secrets(
            &e.render().to_string(),
            &secrets(&args),
        ))),
    }
}

/// The secret values on a command line: values of [`SECRET_FLAGS`] (`--flag value` and
/// `--flag=value`), PEM blocks and long arguments.
fn secrets(args: &[OsString]) -> Vec<String> {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut out = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        for flag in SECRET_FLAGS {
            if arg == flag {
                if let Some(value) = args.get(i + 1) {
                    out.push(value.clone());
                }
            } else if let Some(value) = arg.strip_prefix(flag).and_then(|v| v.strip_prefix('=')) {
                out.push(value.to_owned());
            }
        }
        if arg.len() >= LONG_ARGUMENT || arg.contains("-----BEGIN") {
            out.push(arg.clone());
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// `text` with each secret (whole, then line by line) replaced by `<redacted>`; if any
/// [`PIECE`]-character piece of a secret is still there, a message that quotes nothing.
fn without_secrets(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for secret in secrets {
        out = out.replace(secret.as_str(), "<redacted>");
        for piece in secret.split(['\n', '\r', '|', ',', ' ', '=', '\'', '"']) {
            if piece.len() >= 6 {
                out = out.replace(piece, "<redacted>");
            }
        }
    }
    let leaks = secrets.iter().any(|secret| {
        let chars: Vec<char> = secret.chars().collect();
        chars
            .windows(PIECE)
            .any(|w| out.contains(&w.iter().collect::<String>()))
    });
    if leaks {
        return "error: the command line was not accepted; the message is withheld because it \
                would show key material. Run `tessera serve --help`, and pass keys as files \
                (--static-signing-key-file) or environment variables.\n"
            .to_owned();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nVJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n-----END PRIVATE KEY-----\n";

    fn error_of(args: &[&str]) -> String {
        match parse(args.iter().copied()) {
            Err(ArgsOutcome::Error(text)) => text,
            other => panic!("expected an argument error, got {other:?}"),
        }
    }

    fn assert_clean(text: &str) {
        for line in PEM.lines().filter(|l| !l.starts_with("-----")) {
            for w in line.as_bytes().windows(PIECE) {
                let w = std::str::from_utf8(w).unwrap();
                assert!(!text.contains(w), "{w:?} in {text}");
            }
        }
    }

    #[test]
    fn sec2_l9_argument_errors_never_quote_a_key() {
        let stored = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo|\
                      MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKjMzEfYyji";
        let cases: Vec<Vec<&str>> = vec![
            vec!["tessera", "serve", "--static-signing-key", PEM, "--bogus"],
            vec!["tessera", "serve", "--bogus", "--static-signing-key", PEM],
            vec!["tessera", "serve", "--anonymous-signing-key", PEM, "extra"],
            vec!["tessera", "serve", PEM],
            vec!["tessera", "serve", stored],
            vec![
                "tessera",
                "serve",
                "--static-signing-key",
                stored,
                "--static-signing-key",
                stored,
            ],
            vec![
                "tessera",
                "serve",
                "--previous-static-signing-keys",
                PEM,
                "--port",
            ],
        ];
        for args in cases {
            let text = error_of(&args);
            assert_clean(&text);
            assert!(!text.contains("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"), "{text}");
        }
        // The rest of the message still helps.
        assert!(
            error_of(&["tessera", "serve", "--static-signing-key", PEM, "--bogus"])
                .contains("--bogus")
        );
    }

    #[test]
    fn sec2_l9_a_pem_after_its_flag_is_taken_as_the_value() {
        let cli = parse(["tessera", "serve", "--static-signing-key", PEM]).expect("parses");
        let crate::config::Command::Serve(args) = cli.command;
        assert_eq!(args.static_signing_key.as_deref(), Some(PEM));
    }
}
