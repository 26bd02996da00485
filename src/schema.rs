// @generated shape: kept identical to `diesel print-schema` output for the migrations.

diesel::table! {
    service_secrets (name) {
        name -> Text,
        value -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    organizations (id) {
        id -> Uuid,
        slug -> Text,
        name -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    api_clients (org_id, id) {
        org_id -> Uuid,
        id -> Uuid,
        client_id -> Text,
        secret_hash -> Nullable<Text>,
        name -> Text,
        scopes -> Array<Text>,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        token_endpoint_auth_method -> Text,
        jwks -> Nullable<Jsonb>,
        jwks_uri -> Nullable<Text>,
    }
}

diesel::table! {
    identity_providers (org_id, id) {
        org_id -> Uuid,
        id -> Uuid,
        issuer -> Text,
        jwks_uri -> Text,
        audience -> Text,
        scope_claim -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    issuer_directory (issuer) {
        issuer -> Text,
        org_id -> Uuid,
        provider_id -> Uuid,
    }
}

diesel::table! {
    client_directory (client_id) {
        client_id -> Text,
        org_id -> Uuid,
    }
}

diesel::table! {
    audit_events (org_id, seq) {
        org_id -> Uuid,
        seq -> Int8,
        id -> Uuid,
        occurred_at -> Timestamptz,
        actor -> Text,
        action -> Text,
        resource_type -> Text,
        resource_id -> Nullable<Text>,
        detail -> Jsonb,
    }
}

diesel::joinable!(api_clients -> organizations (org_id));
diesel::joinable!(audit_events -> organizations (org_id));

diesel::table! {
    builtin_instrument_versions (key, version) {
        key -> Text,
        version -> Int4,
        status -> Text,
        definition -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    instrument_versions (org_id, key, version) {
        org_id -> Uuid,
        key -> Text,
        version -> Int4,
        status -> Text,
        definition -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        published_at -> Nullable<Timestamptz>,
        retired_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(instrument_versions -> organizations (org_id));

diesel::allow_tables_to_appear_in_same_query!(
    service_secrets,
    organizations,
    api_clients,
    client_directory,
    audit_events,
    builtin_instrument_versions,
    instrument_versions,
    responses,
    pseudonym_keys,
);

diesel::table! {
    responses (org_id, id) {
        org_id -> Uuid,
        id -> Uuid,
        seq -> Int8,
        instrument_key -> Text,
        instrument_version -> Int4,
        patient -> Text,
        clinician -> Nullable<Text>,
        episode -> Nullable<Text>,
        rater -> Text,
        administered_at -> Timestamptz,
        session -> Nullable<Int4>,
        answers -> Jsonb,
        external_id -> Nullable<Text>,
        payload_hash -> Bytea,
        source -> Text,
        status -> Text,
        void_reason -> Nullable<Text>,
        voided_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        created_by -> Text,
        total -> Nullable<Float8>,
        mean -> Nullable<Float8>,
        pomp -> Nullable<Float8>,
        subscales -> Nullable<Jsonb>,
        answered -> Nullable<Int4>,
        missing -> Nullable<Int4>,
        prorated -> Nullable<Bool>,
        flags -> Nullable<Array<Text>>,
        score_error -> Nullable<Text>,
        external_system -> Nullable<Text>,
        band -> Nullable<Text>,
        amended_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(responses -> organizations (org_id));

diesel::table! {
    outbox_events (org_id, id) {
        org_id -> Uuid,
        id -> Uuid,
        seq -> Int8,
        kind -> Text,
        response_id -> Uuid,
        patient -> Text,
        instrument_key -> Text,
        rater -> Text,
        created_at -> Timestamptz,
        processed_at -> Nullable<Timestamptz>,
        attempts -> Int4,
    }
}

diesel::table! {
    alerts (org_id, id) {
        org_id -> Uuid,
        id -> Uuid,
        seq -> Int8,
        kind -> Text,
        status -> Text,
        patient -> Text,
        clinician -> Nullable<Text>,
        episode -> Nullable<Text>,
        instrument_key -> Text,
        instrument_version -> Int4,
        rater -> Text,
        response_id -> Uuid,
        fingerprint -> Text,
        detail -> Jsonb,
        created_at -> Timestamptz,
        acknowledged_at -> Nullable<Timestamptz>,
        acknowledged_by -> Nullable<Text>,
        note -> Nullable<Text>,
        resolved_at -> Nullable<Timestamptz>,
        resolved_by_response_id -> Nullable<Uuid>,
    }
}

diesel::joinable!(outbox_events -> organizations (org_id));
diesel::joinable!(alerts -> organizations (org_id));

diesel::table! {
    pseudonym_keys (org_id) {
        org_id -> Uuid,
        secret -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(pseudonym_keys -> organizations (org_id));

diesel::table! {
    webhook_endpoints (org_id, id) {
        org_id -> Uuid,
        id -> Uuid,
        url -> Text,
        events -> Array<Text>,
        description -> Nullable<Text>,
        payload -> Text,
        status -> Text,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        disabled_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhook_events (org_id, id) {
        org_id -> Uuid,
        id -> Uuid,
        event_type -> Text,
        patient -> Nullable<Text>,
        occurred_at -> Timestamptz,
        full_data -> Text,
        id_only_data -> Text,
        kept_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_deliveries (org_id, id) {
        org_id -> Uuid,
        id -> Uuid,
        seq -> Int8,
        endpoint_id -> Uuid,
        event_id -> Uuid,
        event_type -> Text,
        body -> Text,
        status -> Text,
        attempts -> Int4,
        last_status -> Nullable<Int4>,
        last_error -> Nullable<Text>,
        next_attempt_at -> Timestamptz,
        created_at -> Timestamptz,
        delivered_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(webhook_endpoints -> organizations (org_id));

diesel::table! {
    cds_clients (org_id, id) {
        org_id -> Uuid,
        id -> Uuid,
        issuer -> Text,
        jwks_uri -> Nullable<Text>,
        jwks -> Nullable<Jsonb>,
        description -> Text,
        ehr_connection_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    cds_issuer_directory (issuer) {
        issuer -> Text,
        org_id -> Uuid,
        cds_client_id -> Uuid,
    }
}

diesel::table! {
    cds_cards (org_id, id) {
        org_id -> Uuid,
        id -> Uuid,
        service -> Text,
        patient -> Text,
        alert_ids -> Array<Uuid>,
        issued_at -> Timestamptz,
    }
}

diesel::table! {
    cds_feedback (org_id, id) {
        org_id -> Uuid,
        id -> Uuid,
        card_id -> Uuid,
        service -> Text,
        patient -> Text,
        alert_ids -> Array<Uuid>,
        outcome -> Text,
        outcome_timestamp -> Timestamptz,
        override_reason -> Nullable<Jsonb>,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    ehr_connections (org_id, id) {
        org_id -> Uuid,
        id -> Uuid,
        issuer -> Text,
        client_id -> Text,
        client_auth -> Text,
        client_secret -> Nullable<Text>,
        signing_key -> Nullable<Bytea>,
        signing_alg -> Nullable<Text>,
        public_jwk -> Nullable<Jsonb>,
        frame_origins -> Array<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    ehr_issuer_directory (issuer) {
        issuer -> Text,
        org_id -> Uuid,
        connection_id -> Uuid,
    }
}

diesel::table! {
    launch_states (org_id, state_hash) {
        org_id -> Uuid,
        state_hash -> Bytea,
        connection_id -> Uuid,
        browser_hash -> Bytea,
        code_verifier -> Text,
        token_endpoint -> Text,
        oidc_issuer -> Text,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    launch_codes (org_id, code_hash) {
        org_id -> Uuid,
        code_hash -> Bytea,
        connection_id -> Uuid,
        patient -> Text,
        fhir_user -> Text,
        user_name -> Nullable<Text>,
        token_seconds -> Int8,
        alert_id -> Nullable<Uuid>,
        instrument -> Nullable<Text>,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    expected_models (org_id, instrument_key, rater) {
        org_id -> Uuid,
        instrument_key -> Text,
        rater -> Text,
        status -> Text,
        n_courses -> Int8,
        n_points -> Int8,
        intercept -> Nullable<Float8>,
        intake -> Nullable<Float8>,
        log_t -> Nullable<Float8>,
        intake_log_t -> Nullable<Float8>,
        residual_sd -> Nullable<Float8>,
        intake_p10 -> Nullable<Float8>,
        intake_p50 -> Nullable<Float8>,
        intake_p90 -> Nullable<Float8>,
        fitted_at -> Nullable<Timestamptz>,
        dirty_since -> Nullable<Timestamptz>,
    }
}
