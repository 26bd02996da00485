//! Scoring-core benchmark: one WAI-SR administration, and one 36-item instrument (the full
//! WAI's shape: 1-7 scale, three subscales, reverse-keyed items), from answers as JSON
//! values to a finished `Score`. Run: `cargo bench --bench scoring`.

// Fixture setup may unwrap and index: a bench that cannot build its input should stop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rapport::instruments::model::NewInstrument;
use rapport::instruments::validate::validate;
use rapport::scoring::{ScoreOutcome, score};
use serde_json::{Value, json};

fn wai_sr() -> NewInstrument {
    rapport::instruments::builtin::definitions()
        .unwrap()
        .into_iter()
        .find(|d| d.key == "wai-sr")
        .unwrap()
}

fn thirty_six_items() -> NewInstrument {
    let items: Vec<Value> = (1..=36)
        .map(|i| {
            let subscale = ["task", "bond", "goal"][i % 3];
            let reverse = i % 5 == 0;
            json!({"id": i.to_string(), "subscale": subscale, "reverse": reverse})
        })
        .collect();
    serde_json::from_value(json!({
        "key": "wai-36", "title": "36 items", "raters": ["patient"],
        "scale": {"min": 1, "max": 7, "step": 1},
        "items": items,
        "subscales": [{"key": "task", "title": "Task"}, {"key": "bond", "title": "Bond"}, {"key": "goal", "title": "Goal"}],
        "scoring": {"method": "sum", "missing": {"max_per_subscale": 2, "max_total": 6}}
    }))
    .unwrap()
}

fn answers(n: usize, max: u64) -> BTreeMap<String, Value> {
    (1..=n)
        .map(|i| (i.to_string(), json!(1 + (i as u64 * 7) % max)))
        .collect()
}

fn bench(c: &mut Criterion) {
    let wai = validate(&wai_sr()).unwrap();
    let wai_answers = answers(12, 5);
    assert!(matches!(score(&wai, &wai_answers), Ok(ScoreOutcome::Scored(_))));
    c.bench_function("score wai-sr (12 items)", |b| {
        b.iter(|| score(black_box(&wai), black_box(&wai_answers)))
    });

    let big = validate(&thirty_six_items()).unwrap();
    let big_answers = answers(36, 7);
    assert!(matches!(score(&big, &big_answers), Ok(ScoreOutcome::Scored(_))));
    c.bench_function("score 36-item instrument", |b| {
        b.iter(|| score(black_box(&big), black_box(&big_answers)))
    });

    let mut prorated = wai_answers.clone();
    prorated.remove("1");
    c.bench_function("score wai-sr with one item prorated", |b| {
        b.iter(|| score(black_box(&wai), black_box(&prorated)))
    });
}

/// The expected-response fit over 20,000 courses of 3 to 12 totals (target: under 300 ms).
fn bench_expected(c: &mut Criterion) {
    let courses: Vec<Vec<f64>> = (0..20_000u32)
        .map(|i| {
            let intake = f64::from(8 + i % 17);
            let len = 3 + (i % 10) as usize;
            (1..=len)
                .map(|t| {
                    let noise = f64::from((i.wrapping_mul(2_654_435_761) >> (t % 16)) % 7) - 3.0;
                    if t == 1 {
                        intake
                    } else {
                        2.0 + 0.75 * intake + (-1.2 - 0.08 * intake) * (t as f64).ln() + noise
                    }
                })
                .collect()
        })
        .collect();
    let mut group = c.benchmark_group("expected response");
    group.sample_size(20);
    group.bench_function("fit 20,000 courses", |b| {
        b.iter(|| black_box(rapport::scoring::expected::fit(black_box(&courses))))
    });
    group.finish();
}

criterion_group!(benches, bench, bench_expected);
criterion_main!(benches);
