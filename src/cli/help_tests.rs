//! Tests of the command line's shape: every argument described, options grouped.

use super::*;

/// Every command, argument and option says what it is for in `--help`.
#[test]
fn every_argument_has_a_description() {
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {id}"));
            }
        }
        for sub in cmd.get_subcommands() {
            if sub.get_about().is_none() {
                missing.push(format!("{path} {}", sub.get_name()));
            }
            walk(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
    let mut cmd = Cli::command();
    cmd.build();
    cmd.clone().debug_assert();
    let mut missing = Vec::new();
    walk(&cmd, "swarm", &mut missing);
    assert!(missing.is_empty(), "no description: {missing:?}");
}

#[test]
fn options_are_grouped_under_headings() {
    // Built, so the global options are propagated to the commands.
    let mut cmd = Cli::command();
    cmd.build();
    let fetch = cmd.find_subcommand("fetch").unwrap();
    let heading = |id: &str| {
        fetch
            .get_arguments()
            .find(|a| a.get_id() == id)
            .and_then(|a| a.get_help_heading())
            .map(str::to_string)
    };
    assert_eq!(heading("peers").as_deref(), Some("Network"));
    assert_eq!(heading("max_download_rate").as_deref(), Some("Limits"));
    assert_eq!(heading("seed_ratio").as_deref(), Some("Seeding"));
    assert_eq!(heading("quiet").as_deref(), Some("Output"));
}
