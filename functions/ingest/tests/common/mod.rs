#![allow(dead_code)]
use lambda_http::Request;
use serde_json::Value;
use std::collections::BTreeMap;

pub use test_support::TOKEN;

/// Every events/api fixture: stem -> API Gateway 2.0 request JSON.
pub fn api_fixtures() -> BTreeMap<String, Value> {
    let out: BTreeMap<String, Value> = test_support::fixtures("api")
        .into_iter()
        .map(|(stem, text)| (stem, serde_json::from_str(&text).expect("json")))
        .collect();
    assert!(out.len() >= 19);
    out
}

pub fn api_fixture(name: &str) -> Value {
    api_fixtures()
        .remove(name)
        .unwrap_or_else(|| panic!("no events/api/{name}.json"))
}

pub fn to_request(v: &Value) -> Request {
    lambda_http::request::from_str(&v.to_string()).expect("valid API Gateway 2.0 event")
}

/// Changes the request's path (rawPath and requestContext.http.path).
pub fn set_path(v: &mut Value, path: &str) {
    v["rawPath"] = path.into();
    v["requestContext"]["http"]["path"] = path.into();
}

pub fn set_method(v: &mut Value, m: &str) {
    v["requestContext"]["http"]["method"] = m.into();
}

/// Drops the `?token=` query parameter.
pub fn without_token(v: &mut Value) {
    v["rawQueryString"] = "".into();
    v.as_object_mut()
        .expect("object")
        .remove("queryStringParameters");
}

pub fn set_token(v: &mut Value, token: &str) {
    v["rawQueryString"] = format!("token={token}").into();
    v["queryStringParameters"] = serde_json::json!({ "token": token });
}

pub fn set_body(v: &mut Value, body: &str) {
    v["body"] = body.into();
    v["isBase64Encoded"] = false.into();
}

pub fn set_binary_body(v: &mut Value, body: &[u8]) {
    use base64::Engine;
    v["body"] = base64::engine::general_purpose::STANDARD
        .encode(body)
        .into();
    v["isBase64Encoded"] = true.into();
}

pub fn body_of(v: &Value) -> String {
    v["body"].as_str().expect("text body").to_owned()
}
