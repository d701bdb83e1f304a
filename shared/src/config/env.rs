//! Reading variables: [`Env`] reads every one asked for, records its name
//! and keeps the first problem; [`FromEnv`] is a config read through it.

use super::ConfigError;
use std::cell::RefCell;
use std::collections::HashMap;

/// Where a secret comes from: given directly (local runs) or the name of
/// an SSM SecureString (deployed). Its `Debug` never shows a fixed value.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    Fixed(String),
    Ssm(String),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Fixed(_) => f.write_str("Fixed(..)"),
            SecretSource::Ssm(name) => write!(f, "Ssm({name:?})"),
        }
    }
}

/// The variables a config reads: in AWS (the template sets them) and for
/// local runs only.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Vars {
    pub deployed: Vec<&'static str>,
    pub local_only: Vec<&'static str>,
}

/// Reads variables from the process environment (or given pairs, in tests).
/// A blank value counts as unset (`sam local` declares variables empty).
#[derive(Default)]
pub struct Env {
    pairs: Option<HashMap<String, String>>,
    read: RefCell<Vars>,
    error: RefCell<Option<ConfigError>>,
    /// Reading values that are not used (see [`Env::checked_if`]).
    unused: std::cell::Cell<bool>,
}

impl Env {
    /// The process environment.
    pub fn process() -> Env {
        Env::default()
    }

    /// Only `pairs` (tests, and [`Vars`] derivation with none).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Env {
        Env {
            pairs: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Env::default()
        }
    }

    fn raw(&self, name: &str) -> Option<String> {
        let v = match &self.pairs {
            Some(p) => p.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    fn record(&self, name: &'static str, local: bool) {
        let mut read = self.read.borrow_mut();
        let list = if local {
            &mut read.local_only
        } else {
            &mut read.deployed
        };
        if !list.contains(&name) {
            list.push(name);
        }
    }

    /// Keeps the first problem; reading goes on.
    pub fn fail(&self, e: ConfigError) {
        if !self.unused.get() {
            self.error.borrow_mut().get_or_insert(e);
        }
    }

    /// `read` when its values are used (`on`); otherwise its variables are
    /// still recorded but a problem in them is no problem: a feature that
    /// is off must not keep the function from starting.
    pub fn checked_if<T>(&self, on: bool, read: impl FnOnce(&Env) -> T) -> T {
        let before = self.unused.replace(self.unused.get() || !on);
        let v = read(self);
        self.unused.set(before);
        v
    }

    /// A variable the template sets (or may leave unset).
    pub fn optional_var(&self, name: &'static str) -> Option<String> {
        self.record(name, false);
        self.raw(name)
    }

    /// A variable only local runs set.
    pub fn local_var(&self, name: &'static str) -> Option<String> {
        self.record(name, true);
        self.raw(name)
    }

    /// A variable that must be set (empty, and the problem kept, if not).
    pub fn required_var(&self, name: &'static str) -> String {
        self.optional_var(name).unwrap_or_else(|| {
            self.fail(ConfigError::Missing(name));
            String::new()
        })
    }

    /// `name` parsed with `parse`, `default` when unset (or invalid: the
    /// problem is kept).
    pub fn parsed_var<T>(
        &self,
        name: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        match self.optional_var(name) {
            None => default,
            Some(v) => parse(&v).unwrap_or_else(|reason| {
                self.fail(ConfigError::Invalid { name, reason });
                default
            }),
        }
    }

    /// `name` through [`std::str::FromStr`], `default` when unset.
    pub fn number_var<T: std::str::FromStr>(&self, name: &'static str, default: T) -> T
    where
        T::Err: std::fmt::Display,
    {
        self.parsed_var(name, default, |v| {
            v.parse().map_err(|e: T::Err| e.to_string())
        })
    }

    /// A secret given directly in `local` (local runs), else the SSM
    /// parameter named by `param`; `None` when neither is set.
    pub fn secret_var(&self, local: &'static str, param: &'static str) -> Option<SecretSource> {
        let fixed = self.local_var(local).map(SecretSource::Fixed);
        let ssm = self.optional_var(param).map(SecretSource::Ssm);
        fixed.or(ssm)
    }

    /// The config read, or the first problem met.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        match self.error.into_inner() {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }

    /// The variables `read` asks for (read from an empty environment).
    pub fn vars_of<T>(read: impl FnOnce(&Env) -> T) -> Vars {
        let env = Env::from_pairs(&[]);
        read(&env);
        env.read.into_inner()
    }
}

/// A config read from the environment through an [`Env`].
pub trait FromEnv: Sized {
    /// Reads every field (problems are kept in `env`).
    fn fields(env: &Env) -> Self;

    /// The settings in `env`, or its first problem.
    fn from_env(env: Env) -> Result<Self, ConfigError> {
        let c = Self::fields(&env);
        env.finish(c)
    }

    /// The process environment's settings.
    fn from_process() -> Result<Self, ConfigError> {
        Self::from_env(Env::process())
    }

    /// The variables read (derived by reading an empty environment).
    fn vars() -> Vars {
        Env::vars_of(Self::fields)
    }
}
