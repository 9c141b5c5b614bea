-- The installation itself: exactly one row, created with the schema, that names this
-- ClawLoops instance (shown on the status page, used later to label Docker resources).
CREATE TABLE instance (
    id         uuid        NOT NULL DEFAULT gen_random_uuid(),
    singleton  boolean     NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT instance_pkey PRIMARY KEY (id),
    CONSTRAINT instance_singleton_key UNIQUE (singleton),
    CONSTRAINT instance_singleton_check CHECK (singleton)
);

INSERT INTO instance DEFAULT VALUES;
