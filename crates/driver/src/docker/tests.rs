use super::exit_code;

/// Docker's words when its data root cannot hold a volume to a size (seen on this machine:
/// ext4, and XFS on a kernel without CONFIG_XFS_QUOTA) mean "measure instead", not a failure.
#[test]
fn an_engine_without_volume_quotas_is_recognised() {
    let err = |status_code, message: &str| bollard::errors::Error::DockerResponseServerError {
        status_code,
        message: message.to_owned(),
    };
    assert!(super::quota_unsupported(&err(
        500,
        "create clawloops-x-quota-probe: quota size requested but no quota support"
    )));
    assert!(!super::quota_unsupported(&err(
        500,
        "no space left on device"
    )));
}

/// A runtime that answers its readiness probe with a redirect to another address must not
/// get the prober (on the host, outside the firewall) to go there.
#[tokio::test]
async fn the_readiness_probe_follows_no_redirect() {
    use std::io::{Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let target = elsewhere.local_addr().expect("addr");
    elsewhere.set_nonblocking(true).expect("nonblocking");
    let runtime = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = runtime.local_addr().expect("addr");
    let answered = std::sync::Arc::new(AtomicUsize::new(0));
    let count = answered.clone();
    std::thread::spawn(move || {
        for stream in runtime.incoming().take(1) {
            let mut stream = stream.expect("connection");
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let reply = format!(
                "HTTP/1.1 302 Found\r\nLocation: http://{target}/internal\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(reply.as_bytes()).expect("reply");
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    let res = super::probe_client()
        .expect("client")
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(
        res.status(),
        reqwest::StatusCode::FOUND,
        "the redirect itself is the answer"
    );
    assert!(!res.status().is_success(), "and it does not count as ready");
    assert_eq!(answered.load(Ordering::SeqCst), 1);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        elsewhere.accept().is_err(),
        "the address the runtime named was never contacted"
    );
}

#[test]
fn docker_answers_are_sorted_into_kinds_people_can_act_on() {
    use super::{BollardError, classify};
    use crate::DriverError;
    let server = |status_code: u16, message: &str| BollardError::DockerResponseServerError {
        status_code,
        message: message.to_owned(),
    };
    let full = classify(
        &server(
            500,
            "failed to create the container: write /var/lib/docker/x: no space left on device",
        ),
        None,
    );
    assert!(matches!(full, DriverError::DiskFull(_)), "{full}");
    let missing = classify(&server(404, "No such image: img:1"), Some("img:1"));
    assert!(
        matches!(&missing, DriverError::ImageMissing(i) if i == "img:1"),
        "{missing}"
    );
    assert!(matches!(
        classify(&server(409, "name in use"), None),
        DriverError::Conflict
    ));
    assert!(matches!(
        classify(&BollardError::RequestTimeoutError, None),
        DriverError::Unreachable(_)
    ));
}

#[test]
fn runtime_networks_get_free_subnets_of_the_pool() {
    use super::{default_subnet_pool, free_subnet};
    let pool = default_subnet_pool();
    let first = free_subnet(pool, &[], "rt-ana").expect("free");
    assert_eq!(first.prefix_len(), 28);
    assert!(pool.contains(&first.network()));
    // Taken subnets (and networks overlapping them) are skipped.
    let used = vec![ipnet::IpNet::V4(first)];
    let second = free_subnet(pool, &used, "rt-ana").expect("free");
    assert_ne!(second, first);
    let wide: Vec<ipnet::IpNet> = vec!["10.213.0.0/17".parse().expect("net")];
    let third = free_subnet(pool, &wide, "rt-ana").expect("free");
    assert!(third.network().octets()[2] >= 128, "{third}");
    // A full pool has nothing left.
    let all = vec![ipnet::IpNet::V4(pool)];
    assert_eq!(free_subnet(pool, &all, "rt-ana"), None);
}

#[test]
fn the_entry_proxy_sits_right_after_the_gateway() {
    let subnet: ipnet::Ipv4Net = "10.213.0.16/28".parse().expect("net");
    assert_eq!(
        super::entry_address(subnet)
            .map(|a| a.to_string())
            .as_deref(),
        Some("10.213.0.18")
    );
}

#[test]
fn exit_codes_are_read_from_docker_status_words() {
    assert_eq!(exit_code("Exited (137) 3 seconds ago"), 137);
    assert_eq!(exit_code("Exited (0) About a minute ago"), 0);
    assert_eq!(exit_code("Created"), -1);
}
