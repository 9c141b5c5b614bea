//! `runtime_engine = "swarm"`: what it needs, and the words for what is missing.

use super::*;

/// The swarm settings of deploy/swarm/stack.env.example, as environment variables.
fn swarm_env(jail: &mut Jail) {
    jail.set_env("CLAWLOOPS_RUNTIME_ENGINE", "swarm");
    jail.set_env("CLAWLOOPS_SWARM_MANAGER", "unix:///var/run/docker.sock");
    // The node map exactly as the stack's example writes it.
    let example = include_str!("../../../../deploy/swarm/stack.env.example");
    let nodes = example
        .lines()
        .find_map(|l| l.strip_prefix("CLAWLOOPS_SWARM_NODES="))
        .expect("the example names the nodes")
        .trim_matches('\'');
    jail.set_env("CLAWLOOPS_SWARM_NODES", nodes);
    jail.set_env("CLAWLOOPS_SWARM_ENTRY_NODE", "node-1");
    jail.set_env("CLAWLOOPS_ENTRY_PROXY_CONTAINER", "clawloops_traefik");
}

#[test]
fn a_swarm_is_read_from_the_environment() {
    jailed(|jail| {
        assert_eq!(
            load_in(jail, None).expect("defaults").runtime.engine,
            Engine::Docker
        );
        swarm_env(jail);
        let settings = load_in(jail, None).expect("swarm settings load");
        let Engine::Swarm(swarm) = settings.runtime.engine else {
            panic!("not a swarm: {:?}", settings.runtime.engine);
        };
        assert_eq!(swarm.manager, "unix:///var/run/docker.sock");
        assert_eq!(swarm.nodes.len(), 3);
        assert_eq!(swarm.nodes["node-2"], "unix:///run/clawloops/node-2.sock");
        assert_eq!(swarm.entry_node, "node-1");
        Ok(())
    });
}

#[test]
fn a_swarm_without_what_it_needs_is_refused_by_name() {
    let refused = |adjust: &dyn Fn(&mut Jail), key: &str, words: &str| {
        refused(swarm_env, adjust, key, words);
    };

    refused(
        &|j| j.set_env("CLAWLOOPS_SWARM_NODES", "{}"),
        "swarm_nodes",
        "every node",
    );
    refused(
        &|j| j.set_env("CLAWLOOPS_SWARM_NODES", r#"{"bad/name"="unix:///x.sock"}"#),
        "swarm_nodes",
        "hostname",
    );
    refused(
        &|j| j.set_env("CLAWLOOPS_SWARM_MANAGER", "http://10.0.0.5"),
        "swarm_manager",
        "engine address",
    );
    refused(
        &|j| j.set_env("CLAWLOOPS_SWARM_ENTRY_NODE", "node-9"),
        "swarm_entry_node",
        "not one of swarm_nodes",
    );
    refused(
        &|j| j.set_env("CLAWLOOPS_ENTRY_PROXY_CONTAINER", ""),
        "entry_proxy_container",
        "required on a swarm",
    );
    refused(
        &|j| j.set_env("CLAWLOOPS_RUNTIME_EGRESS", "public"),
        "runtime_egress",
        "entry proxy only",
    );
    refused(
        &|j| {
            j.set_env("CLAWLOOPS_RUNTIME_MANAGER_URL", "http://10.0.0.5:3001/");
            j.set_env("CLAWLOOPS_RUNTIME_MANAGER_SECRET", "x".repeat(40));
        },
        "runtime_manager_url",
        "must be unset",
    );
}
