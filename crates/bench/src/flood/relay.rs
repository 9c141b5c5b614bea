//! A TCP relay to PostgreSQL's socket that holds every chunk a while each way: a database
//! across a network.

use super::*;

/// A TCP relay on loopback to PostgreSQL's Unix socket that holds every chunk `delay` before
/// passing it on, each way. Returns its port.
pub(super) async fn delaying_relay(socket: std::path::PathBuf, delay: Duration) -> Result<u16> {
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    async fn pump(
        mut from: impl AsyncRead + Unpin,
        mut to: impl AsyncWrite + Unpin,
        delay: Duration,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 {
                break;
            }
            tokio::time::sleep(delay).await;
            if to.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let socket = socket.clone();
            tokio::spawn(async move {
                let Ok(unix) = tokio::net::UnixStream::connect(&socket).await else {
                    return;
                };
                let _ = tcp.set_nodelay(true);
                let (tcp_in, tcp_out) = tcp.into_split();
                let (unix_in, unix_out) = unix.into_split();
                tokio::join!(pump(tcp_in, unix_out, delay), pump(unix_in, tcp_out, delay));
            });
        }
    });
    Ok(port)
}
