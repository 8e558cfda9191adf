//! A console client without a browser: plain HTTP with the session
//! cookie, redirects not followed (tests look at them).

use crate::TestServer;

/// Signs in, gets pages, posts forms.
pub struct Browserless {
    http: reqwest::Client,
    url: String,
    /// The session cookie's value, once signed in.
    pub cookie: Option<String>,
}

impl Browserless {
    /// A client of `s`'s console, not signed in.
    pub fn new(s: &TestServer) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            url: s.url.clone(),
            cookie: None,
        }
    }

    /// `GET path`: status, body, headers.
    pub async fn get(&self, path: &str) -> (u16, String, reqwest::header::HeaderMap) {
        let mut req = self.http.get(format!("{}{path}", self.url));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("tessera_session={c}"));
        }
        let res = req.send().await.unwrap();
        let (status, headers) = (res.status().as_u16(), res.headers().clone());
        (status, res.text().await.unwrap(), headers)
    }

    /// `POST form` to `path` (with `origin` when given).
    pub async fn post(
        &self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (u16, String, reqwest::header::HeaderMap) {
        let body: String = form
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace(' ', "+").replace(',', "%2C")))
            .collect::<Vec<_>>()
            .join("&");
        let mut req = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("tessera_session={c}"));
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let res = req.send().await.unwrap();
        let (status, headers) = (res.status().as_u16(), res.headers().clone());
        (status, res.text().await.unwrap(), headers)
    }

    /// Sign in with `key`; the `Set-Cookie` value.
    pub async fn sign_in(&mut self, key: &str) -> String {
        let (status, _, headers) = self.post("/login", &[("key", key)], None).await;
        assert_eq!(status, 303);
        let set = headers["set-cookie"].to_str().unwrap().to_owned();
        let value = set
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("tessera_session=")
            .to_owned();
        self.cookie = Some(value);
        set
    }

    /// The session's CSRF token, from a page's form.
    pub async fn csrf(&self) -> String {
        // Every signed-in page has one: the sign-out form.
        let (_, page, _) = self.get("/").await;
        let start = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        page[start..start + 64].to_owned()
    }
}
