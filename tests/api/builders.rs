//! Fixtures as small builders, shared by every test module (crates.io's `CrateBuilder`
//! idea): answer sets for the built-ins and a response builder that posts through the API,
//! instead of JSON literals that test files import from each other.

use serde_json::{Value, json};

use crate::helpers::TestApp;

/// WAI-SR answers whose total is `total` (12 items on 1-5).
pub fn wai_sr_answers(total: u32) -> Value {
    let (base, extra) = (total / 12, total % 12);
    (1..=12u32)
        .map(|i| (i.to_string(), json!(base + u32::from(i <= extra))))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// PHQ-9 answers whose total is `total` (item 9 stays 0 unless `item9` is given).
pub fn phq9_answers(total: u32, item9: u32) -> Value {
    let mut left = total - item9;
    let mut answers = serde_json::Map::new();
    for i in 1..=8 {
        let x = left.min(3);
        left -= x;
        answers.insert(i.to_string(), json!(x));
    }
    answers.insert("9".into(), json!(item9));
    assert_eq!(left, 0);
    answers.into()
}

/// A PHQ-9 with item 9 answered 3 and item 4 skipped: PHQ-9 allows no missing item.
pub fn phq9_unscored_with_item_9(item9: u32) -> Value {
    let mut answers = phq9_answers(item9, item9);
    answers.as_object_mut().unwrap().remove("4");
    answers
}

/// A WAI-SR response of `patient` rated about `dr-9` at session 3 (the v1 fixture).
pub fn wai_sr(patient: &str, external_id: Option<&str>) -> Value {
    json!({
        "instrument": "wai-sr", "patient": patient, "clinician": "dr-9", "rater": "patient",
        "administered_at": "2026-03-04T15:20:00Z", "session": 3, "external_id": external_id,
        "answers": {"1": 1, "2": 2, "3": 3, "4": 4, "5": 5, "6": 1, "7": 2, "8": 3, "9": 4, "10": 5, "11": 1, "12": 2}
    })
}

/// A response to post: `ResponseBuilder::new("phq-9", "p-1").answers(phq9_answers(4, 1)).post(&app, &token)`.
pub struct ResponseBuilder {
    body: Value,
}

impl ResponseBuilder {
    pub fn new(instrument: &str, patient: &str) -> Self {
        ResponseBuilder {
            body: json!({"instrument": instrument, "patient": patient, "administered_at": "2026-03-04T15:20:00Z",
                "answers": {}}),
        }
    }

    pub fn answers(mut self, answers: Value) -> Self {
        self.body["answers"] = answers;
        self
    }

    pub fn clinician(mut self, clinician: &str) -> Self {
        self.body["clinician"] = json!(clinician);
        self
    }

    pub fn session(mut self, session: u32) -> Self {
        self.body["session"] = json!(session);
        self
    }

    pub fn at(mut self, administered_at: &str) -> Self {
        self.body["administered_at"] = json!(administered_at);
        self
    }

    pub fn body(self) -> Value {
        self.body
    }

    /// Posts it (201 expected); the stored response.
    pub async fn post(self, app: &TestApp, token: &str) -> Value {
        let res = app.post_json(token, "/v1/responses", self.body).await;
        assert_eq!(res.status(), 201, "the builder's response was refused");
        res.json().await.unwrap()
    }
}
