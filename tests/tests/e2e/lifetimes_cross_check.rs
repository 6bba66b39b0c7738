//! Cross-check against a real peer: Python `lifetimes` computes P(alive), expected purchases
//! (52 weeks) and Gamma-Gamma expected spend for every CDNOW customer at the parameters Rapport
//! fitted; Rapport's own values agree to a relative 1e-6.

use rapport_domain::models::Customer;
use rapport_domain::models::bgnbd::BgNbd;
use rapport_domain::models::gamma_gamma::{GammaGamma, Spend};
use rapport_domain::models::pareto_nbd::ParetoNbd;
use rapport_tests::repo_root;
use std::process::Command;

fn relative(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

#[test]
fn lifetimes_agrees_customer_by_customer() {
    let csv = std::env::var("RAPPORT_CDNOW_DIR")
        .map_or_else(|_| repo_root().join("../shared/data/cdnow"), Into::into)
        .join("cdnow_customers_summary_with_transactions.csv");
    let text = std::fs::read_to_string(&csv).unwrap_or_else(|e| panic!("{}: {e}", csv.display()));
    let rows: Vec<(Customer, f64)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<f64> = l.split(',').map(|v| v.parse().unwrap()).collect();
            (
                Customer {
                    x: f[1] as u32,
                    t_x: f[2],
                    t: f[3],
                },
                f[4],
            )
        })
        .collect();
    let customers: Vec<Customer> = rows.iter().map(|(c, _)| *c).collect();
    let spends: Vec<Spend> = rows
        .iter()
        .map(|(c, zbar)| Spend {
            x: c.x,
            zbar: *zbar,
        })
        .collect();
    let bg = BgNbd::fit(&customers).unwrap().params;
    let pareto = ParetoNbd::fit(&customers).unwrap().params;
    let gg = GammaGamma::fit(&spends).unwrap().params;
    let horizon = 52.0;

    let python = rapport_tests::python();
    let out = tempfile::NamedTempFile::new().unwrap();
    let args: Vec<String> = [
        bg.r,
        bg.alpha,
        bg.a,
        bg.b,
        pareto.r,
        pareto.alpha,
        pareto.s,
        pareto.beta,
        gg.p,
        gg.q,
        gg.gamma,
        horizon,
    ]
    .iter()
    .map(|v| format!("{v:.17e}"))
    .collect();
    let status = Command::new(&python)
        .arg(repo_root().join("tests/python/lifetimes_reference.py"))
        .arg(&csv)
        .arg(out.path())
        .args(&args)
        .status()
        .unwrap_or_else(|e| panic!("{}: {e} (make test creates the venv)", python.display()));
    assert!(status.success(), "lifetimes reference failed");

    let reference = std::fs::read_to_string(out.path()).unwrap();
    let mut worst = [0.0f64; 5];
    let mut compared = 0;
    for (line, (c, zbar)) in reference.lines().skip(1).zip(&rows) {
        let v: Vec<f64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        let ours = [
            bg.p_alive(c),
            bg.expected_purchases(c, horizon).unwrap(),
            pareto.p_alive(c).unwrap(),
            pareto.expected_purchases(c, horizon).unwrap(),
        ];
        for k in 0..4 {
            worst[k] = worst[k].max(relative(ours[k], v[k]));
        }
        if c.x > 0 {
            let spend = gg
                .expected_spend(&Spend {
                    x: c.x,
                    zbar: *zbar,
                })
                .unwrap();
            worst[4] = worst[4].max(relative(spend, v[4]));
        }
        compared += 1;
    }
    assert_eq!(compared, 2_357);
    eprintln!("worst relative differences: {worst:?}");
    let names = [
        "BG/NBD P(alive)",
        "BG/NBD E[purchases]",
        "Pareto/NBD P(alive)",
        "Pareto/NBD E[purchases]",
        "Gamma-Gamma spend",
    ];
    for (name, w) in names.iter().zip(worst) {
        assert!(w <= 1e-6, "{name}: worst relative difference {w:e}");
    }
}
