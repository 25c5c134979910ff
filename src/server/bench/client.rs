//! A browser's connection to a server the bench started: HTTP/1.1 over TCP,
//! kept alive, asking for brotli as a browser does, with the session cookie
//! once signed in.

use crate::domain::encode_component;
use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use hyper::body::Incoming;

pub struct Client {
    host: String,
    sender: hyper::client::conn::http1::SendRequest<Body>,
    cookie: Option<String>,
}

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Result<Self, String> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(Client {
            host: addr.to_string(),
            sender,
            cookie: None,
        })
    }

    /// Signs in through the sign-in form's endpoint and keeps the cookie.
    pub async fn sign_in(&mut self, email: &str, password: &str) -> Result<(), String> {
        let form = format!(
            "email={}&password={}",
            encode_component(email),
            encode_component(password)
        );
        let request = Request::post("/api/session/sign-in")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Body::from(form))
            .map_err(|e| e.to_string())?;
        let (status, headers, _) = self.exchange(request).await?;
        let cookie = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("opshub_session="))
            .and_then(|c| c.split(';').next())
            .ok_or_else(|| format!("signing in failed ({status})"))?;
        self.cookie = Some(cookie.to_string());
        Ok(())
    }

    /// Sends `request` and reads the whole answer.
    pub async fn exchange(
        &mut self,
        request: Request<Body>,
    ) -> Result<(StatusCode, HeaderMap, axum::body::Bytes), String> {
        let response = self.open(request).await?;
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(Body::new(body), usize::MAX)
            .await
            .map_err(|e| e.to_string())?;
        Ok((parts.status, parts.headers, body))
    }

    /// Sends `request` and returns the answer as it starts: its body (a
    /// live stream, say) arrives as the server writes it.
    pub async fn open(
        &mut self,
        mut request: Request<Body>,
    ) -> Result<hyper::Response<Incoming>, String> {
        let headers = request.headers_mut();
        headers.insert(header::HOST, self.host.parse().map_err(|_| "bad host")?);
        headers.insert(
            header::ACCEPT_ENCODING,
            "br, gzip".parse().expect("a header value"),
        );
        headers.insert(
            "sec-fetch-site",
            "same-origin".parse().expect("a header value"),
        );
        if let Some(cookie) = &self.cookie {
            headers.insert(header::COOKIE, cookie.parse().map_err(|_| "bad cookie")?);
        }
        self.sender.ready().await.map_err(|e| e.to_string())?;
        self.sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())
    }

    /// The session cookie (`name=value`), once signed in.
    pub fn cookie(&self) -> Option<&str> {
        self.cookie.as_deref()
    }

    /// This connection, signed in with a session another one opened (a
    /// second tab of the same browser).
    pub fn with_cookie(mut self, cookie: &str) -> Self {
        self.cookie = Some(cookie.to_string());
        self
    }
}
