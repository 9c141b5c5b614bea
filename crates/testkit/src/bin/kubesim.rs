//! The in-test Kubernetes API server on its own, to try the Kubernetes driver (and look at the
//! pages) without a cluster: prints its address and pod network, then reads commands from
//! standard input until it ends (or Ctrl-C), and removes its Pods' containers on the way out.
//!
//! ```text
//! cargo run -p clawloops-testkit --bin kubesim
//! CLAWLOOPS_RUNTIME_ENGINE=kubernetes CLAWLOOPS_KUBERNETES_API_URL=<printed address> …
//! ```
//!
//! Commands: `refuse VERB RESOURCE CODE REASON TIMES MESSAGE…` (the next TIMES requests are
//! answered so: `refuse create pods 403 Forbidden 1 exceeded quota: runtimes`), `compact`.

use clawloops_testkit::kubesim::KubeSim;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() {
    let sim = KubeSim::start().await;
    println!("api {}", sim.url);
    println!("network {}", sim.network());
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Ok(Some(line)) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["refuse", verb, resource, code, reason, times, message @ ..] => {
                match (code.parse(), times.parse()) {
                    (Ok(code), Ok(times)) => {
                        sim.refuse(verb, resource, code, reason, &message.join(" "), times);
                        println!("ok");
                    }
                    _ => println!("error: CODE and TIMES are numbers"),
                }
            }
            ["compact"] => {
                sim.compact();
                println!("ok");
            }
            [] => {}
            _ => println!("error: refuse VERB RESOURCE CODE REASON TIMES MESSAGE… | compact"),
        }
    }
}
