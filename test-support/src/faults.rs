//! Faults on the DynamoDB calls of a store under test, injected by an SDK
//! interceptor on its client: the production store has no test hook. The
//! calls really happen (or really do not): a reset request never reaches
//! DynamoDB, a lost answer's write is committed, a refusal is DynamoDB's
//! own error shape parsed by the SDK.

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeDeserializationInterceptorContextMut,
    BeforeTransmitInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use smartlead::adapters::aws::dynamodb::DynamoStore;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What happens to a chosen call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request never reaches DynamoDB (a connection reset).
    Reset,
    /// DynamoDB applies it; its answer is lost (a timeout after the
    /// commit) and the call fails: SQS redelivers.
    LoseAnswer,
    /// DynamoDB applies it; its answer is a 500, which the SDK retries:
    /// the retry meets the call's own write.
    LoseAnswerRetried,
    /// DynamoDB refuses it as a `TransactionConflictException` (a
    /// transaction on the item in the way); nothing is written.
    Conflict,
    /// DynamoDB refuses it for what it holds: a `ValidationException` with
    /// this message; nothing is written.
    Refuse(&'static str),
}

type Pick = Box<dyn Fn(usize) -> Option<Fault> + Send + Sync>;

/// Counts a store's DynamoDB calls (1, 2, ...) and picks the fault of each.
pub struct Faults {
    calls: AtomicUsize,
    /// A call reset on top of `pick` (0: none), set as a test goes.
    reset_at: AtomicUsize,
    pick: Pick,
}

impl Faults {
    /// Call `n` gets `pick(n)`.
    pub fn new(pick: impl Fn(usize) -> Option<Fault> + Send + Sync + 'static) -> Arc<Faults> {
        Arc::new(Faults {
            calls: AtomicUsize::new(0),
            reset_at: AtomicUsize::new(0),
            pick: Box::new(pick),
        })
    }

    /// Only counts.
    pub fn counting() -> Arc<Faults> {
        Faults::new(|_| None)
    }

    /// Exactly call `n` gets `fault`.
    pub fn nth(n: usize, fault: Fault) -> Arc<Faults> {
        Faults::new(move |i| (i == n).then_some(fault))
    }

    /// The first `n` calls get `fault`.
    pub fn first(n: usize, fault: Fault) -> Arc<Faults> {
        Faults::new(move |i| (i <= n).then_some(fault))
    }

    /// Call `n` (counted from the start) is reset as well.
    pub fn reset_at(&self, n: usize) {
        self.reset_at.store(n, Ordering::SeqCst);
    }

    /// Calls made so far (requests sent or reset).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// `store` with its client's calls going through `faults`.
pub fn with_faults(store: &DynamoStore, faults: Arc<Faults>) -> DynamoStore {
    let conf = store
        .client
        .config()
        .to_builder()
        .interceptor(Injector(faults))
        .build();
    DynamoStore {
        client: aws_sdk_dynamodb::Client::from_conf(conf),
        ..store.clone()
    }
}

/// What this call's answer becomes (kept in the call's config bag).
#[derive(Debug, Clone, Copy)]
struct Planned(Fault);
impl Storable for Planned {
    type Storer = StoreReplace<Self>;
}

#[derive(Debug)]
struct Injector(Arc<Faults>);

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Faults({} calls)", self.calls())
    }
}

impl Intercept for Injector {
    fn name(&self) -> &'static str {
        "test-support faults"
    }

    fn modify_before_transmit(
        &self,
        ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let n = self.0.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let fault = if n == self.0.reset_at.load(Ordering::SeqCst) {
            Some(Fault::Reset)
        } else {
            (self.0.pick)(n)
        };
        match fault {
            None => Ok(()),
            Some(Fault::Reset) => Err("injected: connection reset".into()),
            Some(fault @ (Fault::LoseAnswer | Fault::LoseAnswerRetried)) => {
                cfg.interceptor_state().store_put(Planned(fault));
                Ok(())
            }
            Some(fault @ (Fault::Refuse(_) | Fault::Conflict)) => {
                // Sent as a harmless read, so nothing is written; its answer
                // becomes the refusal below.
                let req = ctx.request_mut();
                req.headers_mut()
                    .insert("x-amz-target", "DynamoDB_20120810.ListTables");
                req.headers_mut().insert("content-length", "2");
                *req.body_mut() = SdkBody::from("{}");
                cfg.interceptor_state().store_put(Planned(fault));
                Ok(())
            }
        }
    }

    fn modify_before_deserialization(
        &self,
        ctx: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (status, code, message) = match cfg.load::<Planned>().copied() {
            Some(Planned(Fault::Refuse(message))) => (400, "ValidationException", message),
            Some(Planned(Fault::Conflict)) => (
                400,
                "TransactionConflictException",
                "Transaction is ongoing for the item",
            ),
            Some(Planned(Fault::LoseAnswerRetried)) => {
                (500, "InternalServerError", "Internal server error")
            }
            _ => return Ok(()),
        };
        // Once: the SDK's retry of this call goes through untouched.
        cfg.interceptor_state().unset::<Planned>();
        let body = serde_json::json!({ "__type": code, "message": message }).to_string();
        let mut r = Response::new(StatusCode::try_from(status)?, SdkBody::from(body));
        r.headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        r.headers_mut().insert("x-amzn-errortype", code);
        *ctx.response_mut() = r;
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        _: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        match cfg.load::<Planned>() {
            Some(Planned(Fault::LoseAnswer)) => Err("injected: answer lost after commit".into()),
            _ => Ok(()),
        }
    }
}
