//! The TCP step under awc's connector, with `TCP_NODELAY` set on every new socket.
//!
//! awc connects through actix-tls's resolver + TCP connector service and never touches the
//! socket's options; `awc::Connector::connector` accepts any service of the same shape, so
//! this one wraps actix-tls's and sets the option before the TLS handshake (if any) starts.

use std::task::{Context, Poll};

use actix_service::Service;
use actix_tls::connect::{ConnectError, ConnectInfo, Connection, ConnectorService};
use awc::http::Uri;
use futures_util::future::LocalBoxFuture;
use tokio::net::TcpStream;

/// actix-tls's default connector (system resolver, plain TCP) plus `TCP_NODELAY`.
#[derive(Clone, Default)]
pub struct NoDelayConnector {
    inner: ConnectorService,
}

impl Service<ConnectInfo<Uri>> for NoDelayConnector {
    type Response = Connection<Uri, TcpStream>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<ConnectInfo<Uri>>::poll_ready(&self.inner, cx)
    }

    fn call(&self, request: ConnectInfo<Uri>) -> Self::Future {
        let connecting = self.inner.call(request);
        Box::pin(async move {
            let connection = connecting.await?;
            if let Err(err) = connection.io_ref().set_nodelay(true) {
                // The socket still works, only with Nagle's delays.
                tracing::warn!(%err, host = connection.hostname(), "cannot set TCP_NODELAY");
            }
            Ok(connection)
        })
    }
}
