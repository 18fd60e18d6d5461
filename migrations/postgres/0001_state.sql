-- ion-plan state store, schema version 1 (docs/state.md, "Running as a team").
-- A plan is keyed by its file stem, as the file store names its journals.

CREATE TABLE ion_plan_runs (
    run_id     text        PRIMARY KEY,
    plan       text        NOT NULL,
    -- The plan's `name:`, for `ion-plan runs --plan NAME`.
    name       text,
    -- The journal's header line, exactly as the file journal's first line.
    header     json        NOT NULL,
    -- The plan text the run started from (the file store's `.plan.yaml` beside the journal).
    plan_text  text        NOT NULL,
    created    timestamptz NOT NULL
);
CREATE INDEX ion_plan_runs_by_plan ON ion_plan_runs (plan, run_id);

-- One row per event: the same JSON as a line of the file journal.
CREATE TABLE ion_plan_events (
    run_id  text        NOT NULL REFERENCES ion_plan_runs (run_id),
    seq     bigint      NOT NULL CHECK (seq > 0),
    at      timestamptz NOT NULL,
    record  json        NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- One runner per plan. `token` only ever grows (a released lease keeps its row), so a runner
-- that lost its lease can never match it again.
CREATE TABLE ion_plan_leases (
    plan      text        PRIMARY KEY,
    holder    text        NOT NULL,
    host      text        NOT NULL,
    pid       integer     NOT NULL,
    acquired  timestamptz NOT NULL,
    expires   timestamptz NOT NULL,
    token     bigint      NOT NULL
);

-- approve / abort / promote, bound to a run; a runner records in its journal which it took.
CREATE TABLE ion_plan_inbox (
    id      text        PRIMARY KEY,
    plan    text        NOT NULL,
    run_id  text        NOT NULL,
    at      timestamptz NOT NULL,
    entry   json        NOT NULL
);
CREATE INDEX ion_plan_inbox_by_run ON ion_plan_inbox (plan, run_id, at);
