//! The README's configuration table must match `linktrack serve --help`:
//! every flag clap knows is documented with its env var, and the README
//! documents no flag that doesn't exist.

use clap::CommandFactory;
use linktrack::config::Cli;

#[test]
fn readme_config_table_matches_clap() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let cli = Cli::command();
    let serve = cli.find_subcommand("serve").expect("serve subcommand");
    let mut documented = 0;
    for arg in serve.get_arguments().chain(cli.get_arguments()) {
        let (Some(long), Some(env)) = (arg.get_long(), arg.get_env()) else { continue };
        let env = env.to_str().expect("utf-8 env name");
        let row = format!("| `--{long}` | `{env}` |");
        assert!(readme.contains(&row), "README's configuration table lacks the row for --{long} ({env}): expected a line starting {row:?}");
        documented += 1;
    }
    let rows = readme.lines().filter(|l| l.starts_with("| `--")).count();
    assert_eq!(rows, documented, "README documents {rows} flags but `serve` has {documented}");
    assert!(documented >= 20);
}
