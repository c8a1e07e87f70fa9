//! The uplink: queries the device's policy offloads go to an OpenAI-compatible
//! `/v1/chat/completions` endpoint the device owner configured (llama.cpp's server, `edgenlu
//! serve` on a bigger box, a cloud API). Configured from the environment; every failure —
//! connection, timeout, HTTP status, a body that is not a completion — is a typed
//! [`UplinkError`], so the pipeline can fall back to answering locally and say so.

use serde_json::json;
use std::time::Duration;

/// The base URL, e.g. `http://192.168.1.20:8080/v1` (the client appends `/chat/completions`).
pub const URL_ENV: &str = "EDGENLU_UPLINK_URL";
/// Bearer token sent as `Authorization`, if set.
pub const KEY_ENV: &str = "EDGENLU_UPLINK_KEY";
/// Model name sent in the request (default [`DEFAULT_MODEL`]).
pub const MODEL_ENV: &str = "EDGENLU_UPLINK_MODEL";
/// Whole-request timeout in milliseconds (default 5000).
pub const TIMEOUT_ENV: &str = "EDGENLU_UPLINK_TIMEOUT_MS";
/// The model asked for when none is configured.
pub const DEFAULT_MODEL: &str = "default";

/// Why an offloaded query got no answer.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("uplink configuration: {0}")]
    Config(String),
    #[error("uplink unreachable: {0}")]
    Transport(String),
    #[error("uplink timed out after {0} ms")]
    Timeout(u64),
    #[error("uplink answered HTTP {0}")]
    Status(u16),
    #[error("uplink answer is not a chat completion: {0}")]
    Response(String),
}

/// Where and how to reach the uplink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UplinkConfig {
    pub url: String,
    pub key: Option<String>,
    pub model: String,
    pub timeout: Duration,
}

impl UplinkConfig {
    /// The configuration from `EDGENLU_UPLINK_*`; None when no URL is set (no uplink).
    pub fn from_env() -> Result<Option<UplinkConfig>, UplinkError> {
        let Ok(url) = std::env::var(URL_ENV) else {
            return Ok(None);
        };
        let timeout = match std::env::var(TIMEOUT_ENV) {
            Err(_) => Duration::from_secs(5),
            Ok(ms) => ms
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&ms| ms > 0)
                .map(Duration::from_millis)
                .ok_or_else(|| UplinkError::Config(format!("{TIMEOUT_ENV}={ms:?}")))?,
        };
        UplinkConfig {
            url,
            key: std::env::var(KEY_ENV).ok(),
            model: std::env::var(MODEL_ENV).unwrap_or_else(|_| DEFAULT_MODEL.into()),
            timeout,
        }
        .checked()
        .map(Some)
    }

    /// The configuration if its URL is an http(s) URL.
    pub fn checked(self) -> Result<UplinkConfig, UplinkError> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(UplinkError::Config(format!(
                "{URL_ENV}={:?} is not an http:// or https:// URL",
                self.url
            )));
        }
        Ok(self)
    }
}

/// A configured uplink.
#[derive(Debug, Clone)]
pub struct Uplink {
    config: UplinkConfig,
    agent: ureq::Agent,
}

impl Uplink {
    pub fn new(config: UplinkConfig) -> Result<Uplink, UplinkError> {
        let config = config.checked()?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            // Statuses come back as values, so a 4xx/5xx is reported with its code.
            .http_status_as_error(false)
            .build()
            .new_agent();
        Ok(Uplink { config, agent })
    }

    pub fn config(&self) -> &UplinkConfig {
        &self.config
    }

    /// The assistant's reply to `messages` ((role, content) pairs), at most `max_tokens`.
    pub fn complete(
        &self,
        messages: &[(&str, &str)],
        max_tokens: u32,
    ) -> Result<String, UplinkError> {
        let url = format!("{}/chat/completions", self.config.url.trim_end_matches('/'));
        let body = json!({
            "model": self.config.model,
            "max_tokens": max_tokens,
            "messages": messages
                .iter()
                .map(|(role, content)| json!({"role": role, "content": content}))
                .collect::<Vec<_>>(),
        });
        let mut request = self.agent.post(&url);
        if let Some(key) = &self.config.key {
            request = request.header("Authorization", &format!("Bearer {key}"));
        }
        let mut response = request.send_json(&body).map_err(|e| match e {
            ureq::Error::Timeout(_) => UplinkError::Timeout(self.config.timeout.as_millis() as u64),
            other => UplinkError::Transport(other.to_string()),
        })?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(UplinkError::Status(status));
        }
        let value: serde_json::Value = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_json()
            .map_err(|e| UplinkError::Response(e.to_string()))?;
        value["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| UplinkError::Response("no choices[0].message.content".into()))
    }
}
