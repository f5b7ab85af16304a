//! Runs a scenario on the deterministic simulator and reports what the
//! protocol did: detection latency, false positives, dissemination, cost.
//!
//! ```text
//! cargo run --release -p foca-examples --example simulate -- --help
//! cargo run --release -p foca-examples --example simulate -- --scenario crash --members 1000
//! cargo run --release -p foca-examples --example simulate -- --scenario partition --json
//! cargo run --release -p foca-examples --example simulate -- --scenario join --plot join.svg
//! ```
//!
//! This file is in the public domain (CC0-1.0).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use foca_examples::scenario::{self, Params, Preset, Report, Scenario};
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;

/// Simulate a foca cluster.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// What to simulate.
    #[arg(long, value_enum, default_value = "crash")]
    scenario: Scenario,
    /// Cluster size.
    #[arg(long, default_value_t = 100)]
    members: u32,
    /// Seed of everything random: the same seed gives the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Probability that a datagram is lost (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Probe periods to simulate (a default per scenario otherwise).
    #[arg(long)]
    periods: Option<u32>,
    /// Config preset.
    #[arg(long, value_enum, default_value = "lan")]
    config: Preset,
    /// One-way latency in milliseconds (jitter up to as much again).
    #[arg(long, default_value_t = 1)]
    latency_ms: u64,
    /// Lifeguard: `off` runs plain SWIM timing and a fixed suspicion
    /// timeout (`Config::awareness_max_multiplier` and
    /// `Config::suspicion_max_multiplier` = 1, `Config::patient_probes`
    /// off), to compare.
    #[arg(long, value_enum, default_value = "on")]
    lifeguard: Switch,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
    /// Draw view accuracy and dissemination over time to this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// On or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Switch {
    On,
    Off,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(0.0..=1.0).contains(&args.loss) {
        eprintln!("--loss must be between 0.0 and 1.0, got {}", args.loss);
        return ExitCode::FAILURE;
    }
    if args.members < 2 {
        eprintln!("--members must be at least 2, got {}", args.members);
        return ExitCode::FAILURE;
    }
    let params = Params {
        scenario: args.scenario,
        members: args.members,
        seed: args.seed,
        loss: args.loss,
        periods: args.periods,
        config: args.config,
        latency_ms: args.latency_ms,
        lifeguard: args.lifeguard == Switch::On,
    };
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{bar:40}] {pos}/{len} periods ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(format!("{:?} × {}", args.scenario, args.members));
        Some(bar)
    } else {
        None
    };
    let result = scenario::run(&params, &mut |done, total| {
        if let Some(bar) = &bar {
            bar.set_length(u64::from(total));
            bar.set_position(u64::from(done));
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("cannot run the scenario: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.plot
        && let Err(e) = plot(&report, path)
    {
        eprintln!("cannot draw {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    if args.json {
        match serde_json::to_string(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("cannot encode the report: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print_summary(&report);
    }
    ExitCode::SUCCESS
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "never".into(), |v| format!("{v:.2} periods"))
}

fn print_summary(r: &Report) {
    println!(
        "scenario {} — {} members, seed {}, loss {:.1}%, {} periods",
        r.scenario,
        r.members,
        r.seed,
        r.loss * 100.0,
        r.periods
    );
    println!(
        "  suspicion timeout          {:.1} periods",
        r.suspicion_timeout_periods
    );
    println!(
        "  crash detected, first      {}",
        opt(r.detection_first_mean_periods)
    );
    println!(
        "  crash detected, median     {}",
        opt(r.detection_all_p50_periods)
    );
    println!(
        "  crash detected, all        {}",
        opt(r.detection_all_max_periods)
    );
    println!("  false positives            {}", r.false_positives);
    println!(
        "  suspicions raised          {} (false: {}; lifeguard {})",
        r.suspicions_raised,
        r.false_suspicions
            .map_or_else(|| "not known".to_string(), |f| f.to_string()),
        if r.lifeguard { "on" } else { "off" }
    );
    println!(
        "  news reached half          {}",
        opt(r.dissemination_p50_periods)
    );
    println!(
        "  news reached all           {}",
        opt(r.dissemination_all_max_periods)
    );
    println!(
        "  converged after heal       {}",
        opt(r.convergence_after_heal_periods)
    );
    println!(
        "  datagrams / member / period {:.2}",
        r.datagrams_per_member_per_period
    );
    println!(
        "  bytes / member / period    {:.1}",
        r.bytes_per_member_per_period
    );
    println!("  largest updates backlog    {}", r.max_updates_backlog);
    println!(
        "  view accuracy, min / final {:.4} / {:.4}",
        r.view_accuracy_min, r.view_accuracy_final
    );
    println!("  assembled in               {:.2} s", r.assemble_seconds);
    println!(
        "  simulated in               {:.2} s ({:.0} member-periods/s)",
        r.run_seconds, r.member_periods_per_sec
    );
    println!(
        "  peak RSS                   {:.1} MiB ({:.1} bytes per known member)",
        r.peak_rss_bytes as f64 / 1048576.0,
        r.bytes_per_known_member
    );
}

fn plot(r: &Report, path: &PathBuf) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let end = r.periods.max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{} — {} members, seed {}", r.scenario, r.members, r.seed),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..end, 0f64..1.05f64)?;
    chart
        .configure_mesh()
        .x_desc("probe periods")
        .y_desc("share")
        .draw()?;
    chart
        .draw_series(LineSeries::new(r.accuracy_timeline.iter().copied(), &BLUE))?
        .label("view accuracy")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    if !r.dissemination_timeline.is_empty() {
        chart
            .draw_series(LineSeries::new(
                r.dissemination_timeline.iter().copied(),
                &RED,
            ))?
            .label("members reached by the news")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}
