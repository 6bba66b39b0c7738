//! Tests of `scorecard`.

use super::*;

const CARD: &str = r#"
    name = "test"
    [[groups]]
    name = "value"
    weight = 2
    [[groups.measures]]
    indicator = "monetary"
    weight = 1
    normalise = { linear = { worst = 0, best = 1000 } }
    [[groups.measures]]
    indicator = "orders"
    window_days = 365
    weight = 3
    normalise = { bands = { good = 5, average = 2, higher_is_better = true } }

    [[groups]]
    name = "satisfaction"
    weight = 1
    [[groups.measures]]
    indicator = "nps"
    weight = 1
    normalise = { linear = { worst = 0, best = 10 } }
    bands = { red = 30, yellow = 60 }
    [[groups.measures]]
    indicator = "complaints"
    weight = 1
    normalise = { bands = { good = 0, average = 1, higher_is_better = false } }

    [[variants]]
    tiers = ["vip"]
    bands = { red = 60, yellow = 80 }
    [[variants.groups]]
    name = "value"
    weight = 1
    [[variants.groups.measures]]
    indicator = "monetary"
    weight = 1
    normalise = { percentile = { higher_is_better = true } }

    [[variants]]
    stages = ["new"]
    [[variants.groups]]
    name = "satisfaction"
    weight = 1
    [[variants.groups.measures]]
    indicator = "nps"
    weight = 1
    normalise = { linear = { worst = 0, best = 10 } }
"#;

fn set() -> ScorecardSet {
    ScorecardSet::from_toml(CARD).unwrap()
}

fn values<'a>(pairs: &'a [(&'a str, f64)]) -> impl Fn(&Measure) -> Option<f64> + 'a {
    move |m: &Measure| pairs.iter().find(|(k, _)| *k == m.key).map(|(_, v)| *v)
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} vs {b}");
}

#[test]
fn groups_and_measures_roll_up_by_weight() {
    let set = set();
    let s = set.default.score(
        values(&[
            ("monetary", 500.0),
            ("orders_365d", 3.0),
            ("nps", 9.0),
            ("complaints_90d", 0.0),
        ]),
        &Population::new(),
    );
    // value = (50·1 + 60·3)/4 = 57.5; satisfaction = (90 + 100)/2 = 95.
    let expected = (2.0 * 57.5 + 95.0) / 3.0;
    close(s.score, expected);
    close(s.groups[0].score.unwrap(), 57.5);
    close(s.groups[1].score.unwrap(), 95.0);
    close(s.measures.iter().map(|m| m.contribution).sum(), s.score);
    close(
        s.measures
            .iter()
            .map(|m| m.contribution + m.shortfall)
            .sum(),
        100.0,
    );
    close(
        s.groups.iter().map(|g| g.contribution).sum::<f64>(),
        s.score,
    );
    assert_eq!(s.band, Band::Yellow);
    // NPS 90 with its own cut-offs is green; the card's would say green too, complaints too.
    assert_eq!(s.measures[2].band, Some(Band::Green));
}

#[test]
fn missing_measures_and_empty_groups_are_left_out_not_zero() {
    let set = set();
    let s = set.default.score(
        values(&[("monetary", 500.0), ("orders_365d", 3.0)]),
        &Population::new(),
    );
    close(s.score, 57.5);
    assert_eq!(s.groups[1].score, None);
    assert_eq!(s.groups[1].contribution, 0.0);
    assert!(s.measured());
    let s = set
        .default
        .score(values(&[("nps", 4.0)]), &Population::new());
    close(s.score, 40.0);
    let none = set.default.score(values(&[]), &Population::new());
    assert!(!none.measured());
    assert_eq!(none.score, 0.0);
}

#[test]
fn variants_by_stage_win_over_tiers() {
    let set = set();
    assert_eq!(set.card_for(None, None), &set.default);
    assert_eq!(set.card_for(Some(Tier::Vip), None), &set.variants[0].card);
    assert_eq!(
        set.card_for(Some(Tier::Vip), Some(Stage::New)),
        &set.variants[1].card
    );
    assert_eq!(set.card_for(Some(Tier::Gold), None), &set.default);
    assert_eq!(set.variants[0].card.bands.red, 60.0);
    assert_eq!(set.variants[1].card.bands, Bands::default());
}

#[test]
fn percentile_measures_need_a_population() {
    let set = set();
    let card = &set.variants[0].card;
    let v = values(&[("monetary", 50.0)]);
    assert!(!card.score(&v, &Population::new()).measured());
    let table = PercentileTable::from_values((1..=100).map(f64::from).collect()).unwrap();
    let population = Population::from([("monetary".to_owned(), table)]);
    let s = card.score(&v, &population);
    assert!((s.score - 50.0).abs() < 1.5, "{}", s.score);
    // A table without values (nobody has the measure yet) ranks nobody.
    let empty = Population::from([("monetary".to_owned(), PercentileTable::default())]);
    assert!(!card.score(&v, &empty).measured());
}

#[test]
fn percentiles_use_mid_ranks() {
    let table = PercentileTable::from_values(
        vec![0.0; 60]
            .into_iter()
            .chain((1..=40).map(f64::from))
            .collect(),
    )
    .unwrap();
    // 60 % of customers have 0: they share the middle of their ranks.
    let zero = table.percentile(0.0);
    assert!((zero - 30.0).abs() < 1.0, "{zero}");
    assert_eq!(table.percentile(-1.0), 0.0);
    assert_eq!(table.percentile(1_000.0), 100.0);
    assert!(PercentileTable::from_values(vec![f64::NAN]).is_none());
}

#[test]
fn normalisation_edges() {
    let lower_better = Normalisation::Bands {
        good: 0.0,
        average: 1.0,
        higher_is_better: false,
    };
    assert_eq!(
        [0.0, 1.0, 2.0].map(|v| lower_better.apply(v, None)),
        [Some(100.0), Some(60.0), Some(0.0)]
    );
    let recency = Normalisation::Linear {
        worst: 180.0,
        best: 0.0,
    };
    assert_eq!(
        [0.0, 90.0, 400.0].map(|v| recency.apply(v, None)),
        [Some(100.0), Some(50.0), Some(0.0)]
    );
    let b = Bands::default();
    assert_eq!(
        [50.0, 50.1, 75.0, 76.0].map(|s| b.of(s)),
        [Band::Red, Band::Yellow, Band::Yellow, Band::Green]
    );
}

#[test]
fn bad_scorecards_name_the_setting_and_the_reason() {
    let cases = [
        (
            CARD.replacen("weight = 2", "weight = -2", 1),
            "groups[0].weight: must be a positive number",
        ),
        (
            CARD.replacen("\"monetary\"", "\"happiness\"", 1),
            "groups[0].measures[0].indicator: unknown indicator \"happiness\"",
        ),
        (
            CARD.replacen("good = 5, average = 2", "good = 2, average = 5", 1),
            "groups[0].measures[1].normalise.bands: good must be above average",
        ),
        (
            CARD.replacen("red = 30, yellow = 60", "red = 70, yellow = 60", 1),
            "groups[1].measures[0].bands: must satisfy 0 <= red < yellow < 100",
        ),
        (
            CARD.replacen("window_days = 365", "window_days = 400", 1),
            "groups[0].measures[1].window_days: must be 1 to 365",
        ),
        (
            CARD.replacen(
                "indicator = \"nps\"\n",
                "indicator = \"nps\"\n        window_days = 30\n",
                1,
            ),
            "groups[1].measures[0].window_days: nps has no window",
        ),
        (
            CARD.replacen(
                "stages = [\"new\"]",
                "stages = [\"new\"]\n        tiers = [\"vip\"]",
                1,
            ),
            "variants[1].tiers[0]: tier \"vip\" already has a variant",
        ),
        (
            CARD.replacen("name = \"satisfaction\"", "name = \"value\"", 1),
            "groups[1].name: must be non-empty and unique",
        ),
        (
            CARD.replacen("weight = 3", "wieght = 3", 1),
            "unknown field `wieght`",
        ),
    ];
    for (text, expected) in cases {
        let err = ScorecardSet::from_toml(&text).unwrap_err().to_string();
        assert!(
            err.contains(expected),
            "{err:?} should contain {expected:?}"
        );
    }
}

#[test]
fn the_builtin_scorecard_is_valid_and_covers_the_five_groups() {
    let set = ScorecardSet::builtin();
    let names: Vec<&str> = set.default.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(
        names,
        ["value", "loyalty", "satisfaction", "service", "engagement"]
    );
    assert_eq!(set.default.bands, Bands::default());
}
