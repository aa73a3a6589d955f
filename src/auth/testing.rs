//! Test fixtures for `auth`: fixed keys, token minting, and a fake issuer on a loopback port.
//!
//! The keys were generated once with openssl for these tests and protect nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use url::Url;

/// RSA 2048, PKCS#1 DER: the issuer's key.
const RSA_A: &str = "
MIIEpAIBAAKCAQEAu6j1FJ2PeNUSsPxw2AFJlvlrm/x0mt7eRZ2ZDEk7uXhXYm4frz2OK+oW4/ooWIBMwB6NgN/oY0bnSu+r
nUe8NeJRsISUr5R3oQrDnmXcLnZkh4m1HPk6fieA+8/owiEat3Gpu/dd3hkc2QzGaMLq/wTPSQmXaaqWXZOtPBuNmLH+b2RO
9CWNvK5OGPT8Lhojk203ti5OZBP2hAENSYvcae9/yvKwEMTAOaNbXPxUBdrXrvL5KXWB0gnCe72JRCDb/W8lXZrkwvMK5NqS
cim8xAun3fKlB7aoEj52/XDAh17hOc4Mwi5lpVYeBx+FNlFMOcMP+abqZjD3vHM3Gr8kSQIDAQABAoIBACO1UjFCi/bjoINh
/bz0fcLHIjVT1AJWLzhS9TjzxHQV1Jbruoa3cVKk4AcwZjX07+XMyoM/1/HwH3nQYjjy2frs3jt29u30E9FmgXOmEUAcEiQC
TZ6+Q+WWccI4vSMXdoR6keAtAUUORUF931E26c1t5l2RAClApw0WWSvrWEW6IXIDZhuDbNr9n4ykhgwz13YPPWtzOfuWW8OO
u+lmgcOZU9VDIlwuSI8ZCRcYxL6A5l+b1lfE6oWIgn4BOAsZkZZn79C16Z+oY5rNNWcV/LfZyDbGyTzWjwi8zXzRIaQcYNB5
1qjP84uNeSCAr5Hf3NGRzGlclR8JvA8GohvK/LsCgYEA3qGetHWaOw1kI7GulB8aQAQOfbzWS6fhiIhEMzW/5DRku49jUm2S
H8hX2O9poEgxgtn9oUXRRCIv/89punVnVw/OP578mWWG/4J3HI4bbG4cegEeqBqh0hP10LHy0jtXESfYy8FkjQ41f1SfNofI
Af+ViriVXOZ6pnsKCFR5dksCgYEA18l8EXAcsAeAOfqjEWdDjr0P7a5m1WbiT2XO6EJ9iYnCFPLb9HQaQSmGi6HfRsfR8G1T
kePh8Ymlg9h1jj0vmvSt9ZGqp+p+R1LPrqqenL7yk0Wdk7m70SHaSLaogflCaaq/hJcDa8d7V3ls+nPLp4przeFqmGBg4uOk
q+BaAzsCgYEAyi5ij6Yhi7FsmNHbJp9cWniUpHHi91AeDL0bmpoci2VdecwNOiVRx9VMmjFKbopBlIDdyiE6m7Kkfp9heDj4
wWMUPkjnQ3OldtOH0oHnu7//0njD24xcGwmPepiwWWYUevsB8oDODR+zS9CQypfi9pWivBlHY9fX2OryQIBe0iMCgYEA0GRR
wBlwawNjbxrA/p6mXKPzTQu/XdoVNq5QandD+16ho0+C4gp6DHII8LJsCVQSSEmcimj0HCpdQP37UVl/rvsbQOvjTnSkbUbp
MHqv4Rp684Uoj7CwVGCICO71v0e0Po3alTat5Blq4WhvuVO42t1QDSzjn7J7/sHvltl8tF8CgYBZKVRjEV/mxLGePItHEHpE
t4GcOUZnOMyrxWWukw48nLUXgyGYJ8GJfKt6P02m23Lx/qnAxraLtRW8ts88TiDgmo1DM37x8U9iqZfa7hAkcX81EWV6UJWB
dae5jbxsiCnW0G1PU/c6/qhUsKLhd6YX9yHSMh+GxHTXqJNI/x7DgA==
";

/// RSA 2048, PKCS#1 DER: somebody else's key.
const RSA_B: &str = "
MIIEowIBAAKCAQEAnWLQfwOkGpjivRJVZbPEutpmkf64qtFFdpU9Fku6kJ5VHuplB+o2N7HlwY/PbxgnbKCXePpQzDVXz6c1
JUdgboH1PK5KcbE7g9KPMMMw7DR4jy8uGol0T6RnfxjSiW+VN/VAcAa8k6G6ACne0flV5udGxSam6U3o0rQWKZB48v9ElhwE
/SwxSX/0Qg9R5zRxfgBmrsQPAdWquIG9po/v+w9/32fTZp+ZS7K4R4rqBd7UOYseaMuTU/TR7daa5eMqq37BywClUyNIfo5J
O7w/mrtLzSLYrn3K3+MQDt5G5zjoaI5Vnjr/SHgKf/3/x/KHAJRpgzAo4O08R7isslYTdwIDAQABAoIBABSZlHSrg1U/4Z2h
wq+3Ie7bG0XMs1sYXSEyU3aRnu/C6Z1MTMEGdOZBULNPIXWHEdH0Cx94lA7GhKHXXutsNkEAnZq9rVzIN+P/MWLOiZ7BF26W
XFB44VJzUGCgXR5EDqHuZerD1vbz2iafVFzjZ8z7RJYVgw9SdUDu9V+nW01iy4l+SjzCv9PQi/2Gj09m6ldqR+MO91FKiZVh
I8fBIr1wX/Nr5oetlWzEWG5ma9IRp7kJKfqPpZAB+BAzkiP1oPDyqmedu+3k1iwYO++DqQHJMxCiN08Kje9S9Bzu5iH450PY
uCSN+EqtLTifipeCIbbKCA1L4dO5RljTog/8UvECgYEAyZ0uAGYKkOxjSespxcV4gTueml2nT1xyxrD4KFVzhJvT0NAk7Nxl
hOIrea1ytjmZbKSi8SKinX3Rsai+HgbM1k6yneLMZ42FYvX7qDeg5wlmtHJqxGWbnWiN0TVDB590x8HAEkQ7vEyiLCcaLk8d
TLH0icLN5CnRgxwS746NJsMCgYEAx9dj9/cFFAV6vSOMhz0Qdrm9FMwaWZKWyvaQiDf0iIrFlJB9RsTWMIO87XbaepKg6XDy
1KVuuzvMk7NZejMTFFw2WAGB6IyXoKBQ+MOoA5bQxpJ9HBD12Go8IkNXtW+L+/slDJR80a1r/GBEtvB8Iy44xLurpo4R7rUM
fon1XT0CgYBmOtQLkbJD4AlMfvi0drfu15tJbLmcjSUJyMxcL1Ae6qDR3ekLTYoQglpHHYLwEW7RXv3cRZKtRxIgAo88THhr
JoZ9dnXtAB6lmlMb7fEhlWvFjcrDgT4R5+UZMuelIt6lN4I8AOtFRJpqxv0IhEc4D3gOrn+V9Ppuf7q+S8sY3wKBgQCEYPz6
5Go7wgl1Qxgy+dNvIkjLfwyxazZyinRhl9dnn62UZUZnW7qa9plvID1H1tu657QkAtZgNxOkf7j1BuJLqW3iTFVWy9MhdzFM
KKeigQQZli5EKkQAsRbWh4+RQ6wSJmJ7e91XNC8FRmweVx2UXGkEgWEKerAMVWhKZm7f7QKBgAnvOEyFrhNqdztwPT2XBPOD
l5KP5ocjrPcM3T2wiv5lOCkGHsIzSEXyC52a4b5vRP1rGuXz+C02JKYEJYhv3O1TUjWibQ6z8or3c40A7LW3sXQlLx7sLFqF
5jPMfjo+NGEX9aXJszEef/ASZxKFZohMxOboEZXwBScWNh+lGdQr
";

/// EC P-256, PKCS#8 DER.
const EC_P256: &str = "
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgNhWLnCaZ2vWQGvXKfBaS5TehG3eUKvKJ8gIy5nouvv+hRANC
AARQrrw49ObHdz5DHjmRfI/hxnNnkV+zNFK05acIig7GS8OOyBtKyIck/0AYGVWnbehs+dDHxJl+9VIk6OgZugmP
";

/// Ed25519, PKCS#8 DER.
const ED25519: &str = "
MC4CAQAwBQYDK2VwBCIEILPs7mMR3mg+EnLa9z8ElXVAQpBOwLodoTBPHzphdF9w
";

/// The public half of `RSA_A`, as the classic HMAC confusion attack uses it.
pub const RSA_A_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu6j1FJ2PeNUSsPxw2AFJ\nlvlrm/x0mt7eRZ2ZDEk7uXhXYm4frz2OK+oW4/ooWIBMwB6NgN/oY0bnSu+rnUe8\nNeJRsISUr5R3oQrDnmXcLnZkh4m1HPk6fieA+8/owiEat3Gpu/dd3hkc2QzGaMLq\n/wTPSQmXaaqWXZOtPBuNmLH+b2RO9CWNvK5OGPT8Lhojk203ti5OZBP2hAENSYvc\nae9/yvKwEMTAOaNbXPxUBdrXrvL5KXWB0gnCe72JRCDb/W8lXZrkwvMK5NqScim8\nxAun3fKlB7aoEj52/XDAh17hOc4Mwi5lpVYeBx+FNlFMOcMP+abqZjD3vHM3Gr8k\nSQIDAQAB\n-----END PUBLIC KEY-----\n";

pub struct TestKey {
    pub alg: Algorithm,
    pub encoding: EncodingKey,
}

impl TestKey {
    pub fn rsa() -> TestKey {
        TestKey { alg: Algorithm::RS256, encoding: EncodingKey::from_rsa_der(&der(RSA_A)) }
    }

    pub fn foreign_rsa() -> TestKey {
        TestKey { alg: Algorithm::RS256, encoding: EncodingKey::from_rsa_der(&der(RSA_B)) }
    }

    pub fn ec() -> TestKey {
        TestKey { alg: Algorithm::ES256, encoding: EncodingKey::from_ec_der(&der(EC_P256)) }
    }

    pub fn ed() -> TestKey {
        TestKey { alg: Algorithm::EdDSA, encoding: EncodingKey::from_ed_der(&der(ED25519)) }
    }

    pub fn hmac(secret: &[u8]) -> TestKey {
        TestKey { alg: Algorithm::HS256, encoding: EncodingKey::from_secret(secret) }
    }

    pub fn with_alg(self, alg: Algorithm) -> TestKey {
        TestKey { alg, ..self }
    }

    /// The public JWK, with `kid`, `use: sig` and the key's `alg`.
    pub fn jwk(&self, kid: &str) -> Value {
        let jwk = Jwk::from_encoding_key(&self.encoding, self.alg).unwrap();
        let mut jwk = serde_json::to_value(jwk).unwrap();
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk
    }

    /// A token with `header` (to which `alg` is added) and `claims`, signed with this key.
    pub fn sign(&self, header: Value, claims: &Value) -> String {
        let mut header = header;
        header["alg"] = serde_json::to_value(self.alg).unwrap();
        let message = format!("{}.{}", encode_part(&header), encode_part(claims));
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, self.alg).unwrap();
        format!("{message}.{signature}")
    }
}

pub fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

pub fn jwks(keys: &[Value]) -> Value {
    json!({ "keys": keys })
}

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Waits until `condition` holds, for what a background task does; fails after 5 s.
pub async fn eventually(condition: impl Fn() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within 5 s");
}

fn der(base64: &str) -> Vec<u8> {
    let compact: String = base64.split_whitespace().collect();
    STANDARD.decode(compact).unwrap()
}

/// An HTTP server on 127.0.0.1 answering canned responses by path, counting requests per path.
/// Unknown paths answer 404.
#[derive(Clone)]
pub struct FakeIssuer {
    origin: String,
    routes: Arc<Mutex<Routes>>,
}

#[derive(Default)]
struct Routes {
    canned: HashMap<String, Canned>,
    hits: HashMap<String, usize>,
    delay: Duration,
}

#[derive(Clone)]
struct Canned {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl FakeIssuer {
    pub async fn start() -> FakeIssuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let routes = Arc::new(Mutex::new(Routes::default()));
        let app = axum::Router::new().fallback(answer).with_state(routes.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeIssuer { origin, routes }
    }

    /// `http://127.0.0.1:port`, without a trailing slash.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn url(&self, path: &str) -> Url {
        Url::parse(&format!("{}{path}", self.origin)).unwrap()
    }

    pub fn json(&self, path: &str, body: &Value) {
        self.respond(path, 200, &[("content-type", "application/json")], serde_json::to_vec(body).unwrap());
    }

    pub fn respond(&self, path: &str, status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) {
        let headers = headers.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        let canned = Canned { status, headers, body: body.into() };
        self.routes.lock().unwrap().canned.insert(path.to_owned(), canned);
    }

    /// Every answer from now on comes after `delay`.
    pub fn delay(&self, delay: Duration) {
        self.routes.lock().unwrap().delay = delay;
    }

    pub fn hits(&self, path: &str) -> usize {
        self.routes.lock().unwrap().hits.get(path).copied().unwrap_or(0)
    }
}

async fn answer(State(routes): State<Arc<Mutex<Routes>>>, uri: Uri) -> Response {
    let (canned, delay) = {
        let mut routes = routes.lock().unwrap();
        *routes.hits.entry(uri.path().to_owned()).or_default() += 1;
        (routes.canned.get(uri.path()).cloned(), routes.delay)
    };
    tokio::time::sleep(delay).await;
    let Some(canned) = canned else { return StatusCode::NOT_FOUND.into_response() };
    let mut response = (StatusCode::from_u16(canned.status).unwrap(), canned.body).into_response();
    for (name, value) in canned.headers {
        response
            .headers_mut()
            .insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(&value).unwrap());
    }
    response
}
