"""The PostgreSQL registry's schema, as the migrations that build it, in order (applied once each, recorded in
`forget_schema`; `guard.forget.postgres` runs them on open). Append only: a released migration never changes."""

MIGRATIONS = [
    """
    CREATE TABLE forget_entries (
        id TEXT PRIMARY KEY,
        subject TEXT NOT NULL,
        aliases TEXT NOT NULL,
        policy TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        documents INTEGER NOT NULL,
        mode TEXT NOT NULL DEFAULT 'enforce'
    );
    CREATE TABLE forget_chunks (
        id BIGSERIAL PRIMARY KEY,
        entry_id TEXT NOT NULL REFERENCES forget_entries(id) ON DELETE CASCADE,
        text TEXT NOT NULL,
        vector BYTEA NOT NULL
    );
    CREATE INDEX forget_chunks_entry ON forget_chunks(entry_id);
    CREATE TABLE forget_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
    INSERT INTO forget_meta VALUES ('version', 0);
    CREATE TABLE forget_changes (version BIGINT PRIMARY KEY, op TEXT NOT NULL, entry_id TEXT NOT NULL);
    """,
    "CREATE TABLE forget_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);",  # v2: which embedder wrote the vectors
    """
    CREATE TABLE forget_coverage (
        model TEXT NOT NULL,
        entry_id TEXT NOT NULL REFERENCES forget_entries(id) ON DELETE CASCADE,
        state TEXT NOT NULL,
        leak DOUBLE PRECISION,
        utility_loss DOUBLE PRECISION,
        report_sha256 TEXT,
        registry_version BIGINT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (model, entry_id)
    );
    """,  # v3: which entries a weight-edited model covers (`guard handoff`)
    """
    CREATE TABLE forget_qa (
        entry_id TEXT PRIMARY KEY REFERENCES forget_entries(id) ON DELETE CASCADE,
        pairs TEXT NOT NULL
    );
    """,  # v4: an entry's question/answer pairs, for the weight-level job's export (TOFU layout)
    """
    CREATE TABLE forget_operators (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        token_sha256 TEXT NOT NULL UNIQUE,
        created_at DOUBLE PRECISION NOT NULL,
        revoked_at DOUBLE PRECISION
    );
    """,  # v5: named operators of the admin API, their roles and token hashes (guard.admin.operators)
    "ALTER TABLE forget_changes ADD COLUMN actor TEXT;",  # v6: who made each change (the operator), NULL: the guard
]
