//! warren-perf: parse flags, run, print the report (text or --json). Exits 1 when the run could
//! not start, 2 when it finished with errors (lost messages, failed connections, ...).

use clap::Parser;
use std::process::ExitCode;
use warren_perf::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(warren_perf::run(&args)) {
        Ok(report) => {
            if args.json {
                let json = serde_json::to_string_pretty(&report).expect("report serialises");
                println!("{json}");
            } else {
                print!("{report}");
            }
            if report.errors > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("warren-perf: {e}");
            ExitCode::FAILURE
        }
    }
}
