-- Sign-in throttling that an attacker feels and a team does not (see app/src/ssr/auth/throttle.rs).
-- `login_throttle` keys now mean: "pair:<username>|<address group>" (back-off for one account
-- from one address), "addr:<address group>" (an address trying many accounts) and
-- "user:<username>" (an account guessed at from many addresses; applies only to addresses the
-- account never signed in from). An address group is an IPv4 address or an IPv6 /64.
DELETE FROM login_throttle;

-- Which usernames failed from which address group, to count the different accounts an address
-- tries. A successful sign-in removes its own username's row only.
CREATE TABLE login_address_failures (
    addr_group     text        NOT NULL,
    username       text        NOT NULL,
    failures       integer     NOT NULL DEFAULT 1,
    last_failed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT login_address_failures_pkey PRIMARY KEY (addr_group, username)
);
CREATE INDEX login_address_failures_last_failed_at_idx ON login_address_failures (last_failed_at);

-- Where each account signed in successfully before: an account-wide lock (many addresses
-- guessing at it) never stops its holder from a known address.
CREATE TABLE login_known_sources (
    username        text        NOT NULL,
    addr_group      text        NOT NULL,
    last_success_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT login_known_sources_pkey PRIMARY KEY (username, addr_group)
);
