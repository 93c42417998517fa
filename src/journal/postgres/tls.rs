//! TLS for the PostgreSQL engine: which connector a URL's `sslmode` asks for, and
//! the rustls connector (feature `rustls`: no OpenSSL).

use tokio_postgres::config::SslMode;
use tokio_postgres::Config;

use super::{Fault, Problem};

/// How to connect.
pub(super) enum Connector {
    /// Without TLS (`sslmode` `disable` or `prefer`).
    Plain,
    /// Over TLS, the server verified (`require`, `verify-ca`, `verify-full`).
    #[cfg(feature = "rustls")]
    Rustls(rustls_connect::MakeRustls),
}

/// The URL with libpq's `verify-ca` and `verify-full` spelt `require`, which this
/// engine always verifies (the URL parser knows only `require`).
pub(super) fn verified_modes(url: &str) -> String {
    url.replace("sslmode=verify-full", "sslmode=require")
        .replace("sslmode=verify-ca", "sslmode=require")
}

/// The connector for `config`.
pub(super) fn connector(config: &Config) -> Result<Connector, Fault> {
    match config.get_ssl_mode() {
        SslMode::Require => require(),
        // `prefer` would be TLS without verifying the server: never here.
        _ => Ok(Connector::Plain),
    }
}

#[cfg(feature = "rustls")]
fn require() -> Result<Connector, Fault> {
    rustls_connect::MakeRustls::new().map(Connector::Rustls)
}

#[cfg(not(feature = "rustls"))]
fn require() -> Result<Connector, Fault> {
    Err(Fault::Data(Problem::new(
        "sslmode=require needs TLS, which this build lacks (the SDK's feature rustls)",
    )))
}

#[cfg(feature = "rustls")]
mod rustls_connect {
    use std::future::Future;
    use std::io;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use rustls::pki_types::ServerName;
    use rustls_platform_verifier::BuilderVerifierExt;
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
    use tokio_rustls::client::TlsStream;
    use tokio_rustls::TlsConnector;

    use super::{Fault, Problem};

    /// Makes a verified TLS connection for each host the connection tries.
    #[derive(Clone)]
    pub(crate) struct MakeRustls {
        config: Arc<rustls::ClientConfig>,
    }

    impl MakeRustls {
        /// TLS 1.2 or 1.3, the server's certificate verified by the platform's
        /// verifier (the system's roots).
        pub(crate) fn new() -> Result<Self, Fault> {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .and_then(|builder| builder.with_platform_verifier())
                .map_err(|e| Fault::Data(Problem::new(format!("TLS could not be set up: {e}"))))?
                .with_no_client_auth();
            Ok(MakeRustls {
                config: Arc::new(config),
            })
        }
    }

    impl<S> MakeTlsConnect<S> for MakeRustls
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        type Stream = Stream<S>;
        type TlsConnect = Connect;
        type Error = io::Error;

        fn make_tls_connect(&mut self, host: &str) -> io::Result<Connect> {
            let name = ServerName::try_from(host.to_owned())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            Ok(Connect {
                connector: TlsConnector::from(Arc::clone(&self.config)),
                name,
            })
        }
    }

    /// One TLS handshake, with the server named `name`.
    pub(crate) struct Connect {
        connector: TlsConnector,
        name: ServerName<'static>,
    }

    impl<S> TlsConnect<S> for Connect
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        type Stream = Stream<S>;
        type Error = io::Error;
        type Future = Pin<Box<dyn Future<Output = io::Result<Stream<S>>> + Send>>;

        fn connect(self, stream: S) -> Self::Future {
            Box::pin(async move {
                let stream = self.connector.connect(self.name, stream).await?;
                Ok(Stream(stream))
            })
        }
    }

    /// A TLS connection to the server.
    pub(crate) struct Stream<S>(TlsStream<S>);

    impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for Stream<S> {
        fn channel_binding(&self) -> ChannelBinding {
            ChannelBinding::none()
        }
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }
}
