use super::*;

fn labels(rule: &str, severity: &str, tier: &str, stage: &str, customer: &str) -> Labels {
    Labels {
        rule: rule.into(),
        severity: severity.into(),
        tier: tier.into(),
        stage: stage.into(),
        customer: customer.into(),
    }
}

#[test]
fn a_matcher_needs_every_given_list_to_hold_the_label() {
    let vip_health = Matcher {
        rules: vec!["health_below".into()],
        tiers: vec!["vip".into(), "gold".into()],
        ..Matcher::default()
    };
    assert!(vip_health.matches(&labels("health_below", "critical", "vip", "active", "c")));
    assert!(!vip_health.matches(&labels("health_below", "warning", "regular", "", "c")));
    assert!(!vip_health.matches(&labels("detractor", "critical", "vip", "", "c")));
    assert!(Matcher::default().matches(&labels("x", "", "", "", "")));
    assert_eq!(
        vip_health.describe(),
        "rule in [health_below], tier in [vip, gold]"
    );
}

#[test]
fn a_matcher_refuses_names_nobody_knows() {
    let typo = Matcher {
        tiers: vec!["vip".into(), "platinum".into()],
        ..Matcher::default()
    };
    let e = typo.check("matcher").unwrap_err();
    assert_eq!(e.path, "matcher.tiers");
    assert!(e.reason.contains("\"platinum\""), "{e}");
    let rule = Matcher {
        rules: vec!["health_low".into()],
        ..Matcher::default()
    };
    assert_eq!(rule.check("").unwrap_err().path, "rules");
}

#[test]
fn groups_are_keyed_by_the_route_labels_and_never_collide() {
    let route = Route::default();
    let (key, group) = route.group(&labels("health_below", "warning", "vip", "", "c1"));
    assert_eq!(key, "rule=health_below,severity=warning");
    assert_eq!(group.len(), 2);
    let by_customer = Route {
        group_by: vec![Label::Customer],
        ..Route::default()
    };
    let (a, _) = by_customer.group(&labels("r", "", "", "", "a,customer=b"));
    let (b, _) = by_customer.group(&labels("r", "", "", "", "a"));
    assert_ne!(a, b);
    assert_eq!(a, "customer=a%2Ccustomer%3Db");
    // Grouping by nothing puts every alert in one group.
    let one = Route {
        group_by: vec![],
        ..Route::default()
    };
    assert_eq!(one.group(&labels("r", "s", "t", "", "c")).0, "");
}

#[test]
fn a_group_waits_then_keeps_its_interval() {
    let r = Route {
        group_wait_ms: 30,
        group_interval_ms: 300,
        backfill_wait_ms: 60,
        ..Route::default()
    };
    // A new group collects for group_wait.
    assert_eq!(r.due_at(false, 1_000, None, 1_000), 1_030);
    // Sent at 1_030: the next changes go no sooner than 1_330.
    assert_eq!(r.due_at(false, 1_100, Some(1_030), 1_100), 1_330);
    // Long quiet: a fresh change waits group_wait, as in a new group.
    assert_eq!(r.due_at(false, 9_000, Some(1_030), 9_000), 9_030);
    // A backfill waits until quiet, but not forever.
    assert_eq!(r.due_at(true, 1_000, None, 1_200), 1_260);
    assert_eq!(r.due_at(true, 1_000, None, 1_590), 1_650);
    assert_eq!(
        r.due_at(true, 1_000, None, BACKFILL_MAX_MS + 5_000),
        1_000 + BACKFILL_MAX_MS
    );
    assert_eq!(r.repeat_at(5), Some(5 + 4 * 3_600_000));
    let never = Route {
        repeat_interval_ms: 0,
        ..Route::default()
    };
    assert_eq!(never.repeat_at(5), None);
}

#[test]
fn a_route_that_cannot_work_is_refused_by_name() {
    let check = |r: Route| r.check().map_err(|e| e.path);
    assert_eq!(check(Route::default()), Ok(()));
    assert_eq!(
        check(Route {
            group_wait_ms: -1,
            ..Route::default()
        }),
        Err("group_wait".to_owned())
    );
    assert_eq!(
        check(Route {
            repeat_interval_ms: 1,
            ..Route::default()
        }),
        Err("repeat_interval".to_owned())
    );
    assert_eq!(
        check(Route {
            max_bytes: 10,
            ..Route::default()
        }),
        Err("max_bytes".to_owned())
    );
    assert_eq!(
        check(Route {
            group_by: vec![Label::Rule, Label::Rule],
            ..Route::default()
        }),
        Err("group_by".to_owned())
    );
}

fn inhibitions(text: &str) -> Result<Vec<Inhibition>, ConfigError> {
    let doc: toml::Table = toml::from_str(text).unwrap();
    Inhibition::from_value(doc["inhibit"].clone())
}

#[test]
fn a_standing_detractor_or_a_churned_stage_holds_health_alerts_back() {
    let rules = inhibitions(
        r#"
        [[inhibit]]
        source = { rules = ["detractor"] }
        target = { rules = ["health_below"] }
        [[inhibit]]
        source_stages = ["churned"]
        target = { rules = ["health_below", "score_drop"] }
        "#,
    )
    .unwrap();
    let health = labels("health_below", "warning", "gold", "active", "c1");
    let detractor = labels("detractor", "error", "gold", "active", "c1");
    assert_eq!(mute(&health, &[], &rules, &[], 0), None);
    assert_eq!(
        mute(&health, std::slice::from_ref(&detractor), &rules, &[], 0),
        Some(Mute::Inhibited {
            why: "the customer's detractor alert stands".into()
        })
    );
    // The detractor itself is not held back by the health alert.
    assert_eq!(
        mute(&detractor, std::slice::from_ref(&health), &rules, &[], 0),
        None
    );
    let churned = labels("health_below", "warning", "gold", "churned", "c1");
    assert_eq!(
        mute(&churned, &[], &rules, &[], 0),
        Some(Mute::Inhibited {
            why: "the customer is churned".into()
        })
    );
}

#[test]
fn inhibitions_are_refused_with_the_setting_and_the_reason() {
    let e = inhibitions("[[inhibit]]\ntarget = { rules = [\"health_below\"] }\n").unwrap_err();
    assert_eq!(e.path, "inhibit[0]");
    let e = inhibitions(
        "[[inhibit]]\nsource_stages = [\"gone\"]\ntarget = { rules = [\"health_below\"] }\n",
    )
    .unwrap_err();
    assert_eq!(e.path, "inhibit[0].source_stages");
    let e = inhibitions("[[inhibit]]\nsource = { rules = [\"x\"] }\ntarget = {}\n").unwrap_err();
    assert_eq!(e.path, "inhibit[0].source.rules");
    let e = inhibitions("[[inhibit]]\nwhen = 1\ntarget = {}\n").unwrap_err();
    assert_eq!(e.path, "inhibit");
}

#[test]
fn a_silence_mutes_what_it_matches_between_its_start_and_its_end() {
    let s = Silence {
        id: 7,
        matcher: Matcher {
            customer_ids: vec!["c1".into()],
            ..Matcher::default()
        },
        starts_at: 100,
        ends_at: 200,
    };
    let c1 = labels("health_below", "warning", "", "", "c1");
    let c2 = labels("health_below", "warning", "", "", "c2");
    let silences = [s];
    assert_eq!(mute(&c1, &[], &[], &silences, 99), None);
    assert_eq!(
        mute(&c1, &[], &[], &silences, 150),
        Some(Mute::Silenced { id: 7, until: 200 })
    );
    assert_eq!(mute(&c2, &[], &[], &silences, 150), None);
    assert_eq!(mute(&c1, &[], &[], &silences, 200), None);
}

#[test]
fn parts_stay_within_the_limit_and_keep_every_item_in_order() {
    let items: Vec<String> = (0..100).map(|i| format!("{{\"n\":{i:04}}}")).collect();
    let parts = split(items.clone(), 120, 20);
    assert!(parts.len() > 1);
    for p in &parts {
        let size: usize = p.iter().map(|i| i.len() + 1).sum();
        assert!(size <= 100, "{size}");
    }
    assert_eq!(parts.concat(), items);
    // Too long for any part: alone.
    let parts = split(vec!["x".repeat(500), "y".into()], 120, 20);
    assert_eq!(parts.len(), 2);
    assert!(split(Vec::new(), 120, 20).is_empty());
}

#[test]
fn a_backfill_summary_counts_customers_per_rule_in_words() {
    let config = AlertConfig::builtin();
    let opened: Vec<Labels> = (0..23_570)
        .map(|i| labels("health_below", "warning", "regular", "", &format!("c{i}")))
        .chain([labels("detractor", "error", "gold", "", "c1")])
        .collect();
    let s = BackfillSummary::of("cdnow.txt", &opened, 3, &config);
    assert_eq!(
        s.text,
        "1 customer answering as detractors; 23,570 customers below 50 after the import \
         of cdnow.txt (3 more muted)"
    );
    assert_eq!(s.by_rule["health_below"].alerts, 23_570);
    assert_eq!(s.by_severity["warning"], 23_570);
    assert_eq!(s.by_tier["gold"], 1);
    assert_eq!(thousands(1_000), "1,000");
    assert_eq!(thousands(999), "999");
}
