//! The template checks: what the linters miss in template.yaml (read with
//! `xtask::pipeline::template`, as the local stack reads it), and that it grants and
//! sets what the code of every crate calls and reads.

use xtask::pipeline;
use xtask::pipeline::template::Template;

#[cfg(test)]
mod tests {
    use super::*;
    use smartlead::adapters::aws::{CONSUMER_IAM_ACTIONS, INGEST_IAM_ACTIONS};
    use smartlead::config::{ConsumerConfig, FromEnv, IngestConfig, ReconcileConfig};
    use std::collections::{BTreeMap, BTreeSet};
    use xtask::pipeline::template::Value;

    /// What each function reads in AWS, derived from its config's reader.
    pub(super) fn deployed_env() -> [(&'static str, Vec<&'static str>); 3] {
        [
            ("IngestFunction", IngestConfig::vars().deployed),
            ("ConsumerFunction", ConsumerConfig::vars().deployed),
            ("ReconcileFunction", ReconcileConfig::vars().deployed),
        ]
    }

    /// What only local runs set, for any function.
    pub(super) fn local_only_env() -> Vec<&'static str> {
        let mut v = IngestConfig::vars().local_only;
        v.extend(ConsumerConfig::vars().local_only);
        v.extend(ReconcileConfig::vars().local_only);
        v
    }

    fn t() -> Template {
        Template::load(&pipeline::workspace_root()).expect("template")
    }

    fn num(t: &Template, v: &Value) -> f64 {
        t.resolve(v).and_then(|s| s.parse().ok()).expect("number")
    }

    #[test]
    fn functions_run_on_al2023_arm64_by_default_with_json_logs() {
        let t = t();
        let g = &t.0["Globals"]["Function"];
        assert_eq!(g["Runtime"], "provided.al2023");
        assert_eq!(g["LoggingConfig"]["LogFormat"], "JSON");
        assert_eq!(t.default("Architecture").unwrap(), "arm64");
        for (f, bin) in [
            ("IngestFunction", "smartlead-ingest"),
            ("ConsumerFunction", "smartlead-consumer"),
            ("ReconcileFunction", "smartlead-reconcile"),
        ] {
            let r = t.resource(f).unwrap();
            assert_eq!(r["Metadata"]["BuildMethod"], "rust-cargolambda", "{f}");
            assert_eq!(r["Metadata"]["BuildProperties"]["Binary"], bin, "{f}");
            assert!(
                r["Properties"]["LoggingConfig"]["LogGroup"].is_tagged_ref(),
                "{f} logs to its own group"
            );
        }
    }

    trait IsRef {
        fn is_tagged_ref(&self) -> bool;
    }
    impl IsRef for Value {
        fn is_tagged_ref(&self) -> bool {
            matches!(self, Value::Tagged(t) if t.tag == "!Ref")
        }
    }

    #[test]
    fn the_queue_redrives_to_a_dlq_and_outlives_the_consumer_timeout() {
        let t = t();
        let q = t.props("WebhookQueue").unwrap();
        let redrive = &q["RedrivePolicy"];
        assert!(matches!(&redrive["deadLetterTargetArn"], Value::Tagged(x) if x.tag == "!GetAtt"));
        assert!(num(&t, &redrive["maxReceiveCount"]) >= 1.0);
        let visibility = num(&t, &q["VisibilityTimeout"]);
        let timeout = num(&t, &t.props("ConsumerFunction").unwrap()["Timeout"]);
        assert!(
            visibility >= 6.0 * timeout,
            "visibility {visibility} < 6 x timeout {timeout}"
        );
        assert_eq!(q["SqsManagedSseEnabled"], true);
        assert_eq!(
            t.props("DeadLetterQueue").unwrap()["SqsManagedSseEnabled"],
            true
        );
    }

    #[test]
    fn the_consumer_reports_batch_item_failures() {
        let t = t();
        let ev = &t.props("ConsumerFunction").unwrap()["Events"]["Queue"];
        assert_eq!(ev["Type"], "SQS");
        let types: Vec<&str> = ev["Properties"]["FunctionResponseTypes"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(types, vec!["ReportBatchItemFailures"]);
    }

    #[test]
    fn the_table_is_on_demand_with_ttl_pitr_and_encryption() {
        let t = t();
        let p = t.props("StateTable").unwrap();
        assert_eq!(
            t.resolve(&p["BillingMode"]).as_deref(),
            Some("PAY_PER_REQUEST")
        );
        assert_eq!(
            p["TimeToLiveSpecification"]["AttributeName"],
            smartlead::adapters::aws::dynamodb::TTL_ATTR
        );
        assert_eq!(
            p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
            true
        );
        assert_eq!(p["SSESpecification"]["SSEEnabled"], true);
        let b = t.props("ClaimCheckBucket").unwrap();
        for k in [
            "BlockPublicAcls",
            "BlockPublicPolicy",
            "IgnorePublicAcls",
            "RestrictPublicBuckets",
        ] {
            assert_eq!(b["PublicAccessBlockConfiguration"][k], true, "{k}");
        }
    }

    #[test]
    fn provisioned_billing_is_an_option_with_auto_scaling_on_both_dimensions() {
        let t = t();
        let allowed = &t.0["Parameters"]["BillingMode"]["AllowedValues"];
        assert_eq!(
            *allowed,
            serde_norway::from_str::<Value>("[PAY_PER_REQUEST, PROVISIONED]").unwrap()
        );
        assert_eq!(t.default("BillingMode").unwrap(), "PAY_PER_REQUEST");
        let cond = &t.0["Conditions"]["IsProvisioned"];
        assert!(format!("{cond:?}").contains("PROVISIONED"), "{cond:?}");
        // Capacity is declared only when provisioned (on-demand refuses it).
        let tp = format!(
            "{:?}",
            t.props("StateTable").unwrap()["ProvisionedThroughput"]
        );
        assert!(
            tp.contains("IsProvisioned") && tp.contains("AWS::NoValue"),
            "{tp}"
        );
        // Each index scales like the table: an index short of write
        // capacity throttles the table's writes too.
        // https://repost.aws/knowledge-center/dynamodb-gsi-throttling-table
        let write = (
            "WriteCapacityUnits",
            "DynamoDBWriteCapacityUtilization",
            "MinWriteCapacity",
            "MaxWriteCapacity",
        );
        let read = (
            "ReadCapacityUnits",
            "DynamoDBReadCapacityUtilization",
            "MinReadCapacity",
            "MaxReadCapacity",
        );
        use smartlead::adapters::aws::dynamodb::index::INDEXES;
        for (target, policy, kind, (dim, metric, min, max), index) in [
            (
                "StateTableWriteScaling",
                "StateTableWritePolicy",
                "table",
                write,
            ),
            (
                "StateTableReadScaling",
                "StateTableReadPolicy",
                "table",
                read,
            ),
        ]
        .into_iter()
        .map(|(t, p, k, d)| (t.to_owned(), p.to_owned(), k, d, None))
        .chain(INDEXES.iter().enumerate().flat_map(|(n, i)| {
            let name: String = i.name[..1].to_uppercase() + &i.name[1..];
            [("Write", write), ("Read", read)].map(|(d, dims)| {
                (
                    format!("{name}Index{d}Scaling"),
                    format!("{name}Index{d}Policy"),
                    "index",
                    dims,
                    Some((n, i.name)),
                )
            })
        })) {
            // A scaling target exists with its index: the first always,
            // index n when QueryIndexes >= n.
            for r in [&target, &policy] {
                let c = &t.resource(r).unwrap()["Condition"];
                let c = c.as_str().unwrap();
                for (n, provisioned) in (1..=INDEXES.len()).map(|n| (n, true)).chain([(6, false)]) {
                    let count = n.to_string();
                    let billing = if provisioned {
                        "PROVISIONED"
                    } else {
                        "PAY_PER_REQUEST"
                    };
                    let params = [("QueryIndexes", count.as_str()), ("BillingMode", billing)];
                    let exists = provisioned && index.is_none_or(|(i, _)| i < n);
                    let got = super::hardening::cond(&t, &params, &Value::String(c.to_owned()));
                    assert_eq!(got, exists, "{r} with {params:?}");
                }
            }
            let st = t.props(&target).unwrap();
            if let Some((_, name)) = index {
                let id = format!("{:?}", st["ResourceId"]);
                assert!(id.contains(&format!("/index/{name}\"")), "{target}: {id}");
            }
            assert_eq!(
                st["ScalableDimension"],
                format!("dynamodb:{kind}:{dim}").as_str()
            );
            let lo: f64 = t.resolve(&st["MinCapacity"]).unwrap().parse().unwrap();
            let hi: f64 = t.resolve(&st["MaxCapacity"]).unwrap().parse().unwrap();
            assert!(lo >= 1.0 && lo <= hi, "{target}: {lo}..{hi}");
            assert_eq!(t.resolve(&st["MinCapacity"]), t.default(min).ok());
            assert_eq!(t.resolve(&st["MaxCapacity"]), t.default(max).ok());
            let pc = &t.props(&policy).unwrap()["TargetTrackingScalingPolicyConfiguration"];
            assert_eq!(
                pc["PredefinedMetricSpecification"]["PredefinedMetricType"],
                metric
            );
            let target_pct: f64 = t.resolve(&pc["TargetValue"]).unwrap().parse().unwrap();
            assert!((20.0..=90.0).contains(&target_pct), "{target_pct}");
        }
    }

    #[test]
    fn the_table_s_indexes_are_the_code_s_sparse_and_never_project_all() {
        use smartlead::adapters::aws::dynamodb::index::INDEXES;
        let t = t();
        let p = t.props("StateTable").unwrap();
        assert_eq!(
            t.default("QueryIndexes").unwrap(),
            INDEXES.len().to_string()
        );
        // QueryIndexes = n: the first n indexes of the code's list, each
        // range attribute defined, none other (DynamoDB refuses an
        // attribute definition no key uses).
        for n in 1..=INDEXES.len() {
            let count = n.to_string();
            let params = [("QueryIndexes", count.as_str())];
            let list = |k: &str| -> Vec<Value> {
                p[k].as_sequence()
                    .unwrap()
                    .iter()
                    .filter_map(|v| super::hardening::eval(&t, &params, v))
                    .collect()
            };
            let gsis = list("GlobalSecondaryIndexes");
            assert_eq!(gsis.len(), n, "QueryIndexes={n}");
            let defined: BTreeSet<String> = list("AttributeDefinitions")
                .iter()
                .filter_map(|a| a["AttributeName"].as_str().map(str::to_owned))
                .collect();
            let ranges: BTreeSet<String> =
                INDEXES[..n].iter().map(|i| i.range.to_owned()).collect();
            let keys: BTreeSet<String> = ["pk", "sk"].map(str::to_owned).into();
            assert_eq!(defined, &ranges | &keys, "QueryIndexes={n}");
            for (g, i) in gsis.iter().zip(INDEXES) {
                assert_eq!(g["IndexName"], i.name);
                let keys: Vec<(&str, &str)> = g["KeySchema"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .map(|k| {
                        let s = |f: &str| k[f].as_str().unwrap();
                        (s("AttributeName"), s("KeyType"))
                    })
                    .collect();
                assert_eq!(keys, [(i.hash, "HASH"), (i.range, "RANGE")], "{}", i.name);
                // ALL would write the index on every event: `ek` changes each time.
                assert_eq!(g["Projection"]["ProjectionType"], "INCLUDE", "{}", i.name);
                let projected: Vec<&str> = g["Projection"]["NonKeyAttributes"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                assert_eq!(projected, i.projected, "{}", i.name);
                let tp = format!("{:?}", g["ProvisionedThroughput"]);
                assert!(
                    tp.contains("IsProvisioned") && tp.contains("AWS::NoValue"),
                    "{tp}"
                );
            }
        }
    }

    fn env_of(t: &Template, f: &str) -> BTreeSet<String> {
        t.props(f).unwrap()["Environment"]["Variables"]
            .as_mapping()
            .unwrap()
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect()
    }

    #[test]
    fn every_environment_variable_the_code_reads_is_set() {
        let t = t();
        for (f, vars) in deployed_env() {
            let set = env_of(&t, f);
            assert!(!vars.is_empty(), "{f}: no variable derived");
            for v in vars {
                assert!(set.contains(v), "{f} does not set {v}");
            }
        }
        let deployed: Vec<&str> = deployed_env().into_iter().flat_map(|(_, v)| v).collect();
        let local_only = local_only_env();
        // And the lists are complete: every variable any crate's code reads
        // is in one of them (or, for the tools, in TOOL_ENV below).
        let root = pipeline::workspace_root();
        for (krate, names) in env_read_by_crate(&root) {
            let lambda = krate == "shared" || krate.starts_with("functions/");
            for v in names {
                let known = if lambda {
                    deployed.contains(&v.as_str())
                        || local_only.contains(&v.as_str())
                        || LAMBDA_RUNTIME_ENV.contains(&v.as_str())
                } else {
                    TOOL_ENV.contains(&v.as_str())
                };
                assert!(
                    known,
                    "{krate} reads {v}, which no list (and so no template check or docs/configuration.md) covers"
                );
            }
        }
    }

    /// Set by Lambda itself (the template sets the log format through `LoggingConfig`).
    const LAMBDA_RUNTIME_ENV: &[&str] = &["AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_LOG_LEVEL"];
    /// What the CLI, the local stack, the stand-ins and xtask read.
    const TOOL_ENV: &[&str] = &[
        "SMARTLEAD_API_KEY",
        "SMARTLEAD_API_BASE",
        // The CLI's --requests-per-minute (the stack's SmartleadRequestsPerMinute).
        "SMARTLEAD_REQUESTS_PER_MINUTE",
        "SMARTLEAD_LOG_DIR",
        "SMARTLEAD_TOOLS_DIR",
        "SAM_BUILD_DIR",
        "CARGO_TARGET_DIR",
        "CARGO",
        "JAVA",
        "PATH",
    ];

    /// The upper-case string literals of `text` right after `call` up to the
    /// closing parenthesis: `env_parse(\n "NAME", 3)` names NAME.
    fn names_after(text: &str, call: &str) -> Vec<String> {
        text.split(call)
            .skip(1)
            .flat_map(|rest| {
                let args = rest.split(')').next().unwrap_or_default();
                args.split('"')
                    .skip(1)
                    .step_by(2)
                    .filter(|s| {
                        s.len() > 1
                            && s.chars()
                                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                    })
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Every workspace member (from Cargo.toml) -> the environment variables
    /// its non-test code reads.
    fn env_read_by_crate(root: &std::path::Path) -> BTreeMap<String, BTreeSet<String>> {
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let members = manifest
            .lines()
            .find(|l| l.starts_with("members"))
            .expect("workspace members");
        let mut out = BTreeMap::new();
        for krate in members.split('"').skip(1).step_by(2) {
            let mut names = BTreeSet::new();
            let mut todo = vec![root.join(krate).join("src")];
            while let Some(dir) = todo.pop() {
                for e in std::fs::read_dir(&dir).unwrap().flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        todo.push(path);
                        continue;
                    }
                    if path.extension().and_then(|x| x.to_str()) != Some("rs") {
                        continue;
                    }
                    let text = std::fs::read_to_string(&path).unwrap();
                    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                    for call in [
                        "env::var(",
                        "env::var_os(",
                        "env_required(",
                        "env_parse(",
                        "env_optional(",
                        "local_or_ssm(",
                        "optional_var(",
                        "required_var(",
                        "parsed_var(",
                        "number_var(",
                        "local_var(",
                        "secret_var(",
                        "env = ",
                    ] {
                        names.extend(names_after(code, call));
                    }
                }
            }
            assert!(
                !names.is_empty() || krate != "shared",
                "{krate}: nothing found"
            );
            out.insert(krate.to_owned(), names);
        }
        // Every member was read: the workspace has 7 (shared, 3 functions, cli, test-support, xtask).
        assert!(out.len() >= 7, "{out:?}");
        out
    }

    fn actions(t: &Template, f: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for policy in t.props(f).unwrap()["Policies"].as_sequence().unwrap() {
            let Some(statements) = policy.get("Statement").and_then(Value::as_sequence) else {
                panic!("{f}: only inline policy statements are allowed, found {policy:?}");
            };
            for s in statements {
                assert_eq!(s["Effect"], "Allow");
                assert!(
                    s["Resource"] != Value::String("*".into()),
                    "{f}: no `*` resources"
                );
                match &s["Action"] {
                    Value::String(a) => {
                        out.insert(a.clone());
                    }
                    Value::Sequence(list) => {
                        out.extend(list.iter().filter_map(|a| a.as_str().map(str::to_owned)))
                    }
                    other => panic!("{f}: action {other:?}"),
                }
            }
        }
        out
    }

    /// Which functions make an SDK call; none (`&[]`): only the tools (CLI,
    /// local stack, tests), which need no grant in the template.
    #[derive(Clone, Copy, PartialEq)]
    enum Caller {
        Ingest,
        Consumer,
        Reconcile,
        /// The CLI's list verbs, through the stack's `ListsReadPolicy`.
        Lists,
    }
    use Caller::*;

    /// Every SDK call in the code the functions link (shared/src,
    /// functions/*/src): (file, operation, caller). A new call fails the
    /// test below until it is listed here, and so granted or not.
    const SDK_CALLS: &[(&str, &str, &[Caller])] = &[
        (
            "shared/src/adapters/aws/sqs.rs",
            "send_message",
            &[Ingest, Reconcile],
        ),
        ("shared/src/adapters/aws/s3.rs", "put_object", &[Ingest]),
        (
            "shared/src/adapters/aws/ssm.rs",
            "get_parameter",
            &[Ingest, Consumer, Reconcile],
        ),
        // An agency's clients' own secrets.
        (
            "shared/src/adapters/aws/ssm.rs",
            "get_parameters_by_path",
            &[Ingest],
        ),
        // The client registry: read by the consumer, written by the CLI.
        (
            "shared/src/adapters/aws/dynamodb/clients.rs",
            "get_item",
            &[Consumer],
        ),
        (
            "shared/src/adapters/aws/dynamodb/clients.rs",
            "put_item",
            &[],
        ),
        ("shared/src/adapters/aws/s3.rs", "get_object", &[Consumer]),
        // A 403 on a claim check is told from a missing object by a listing.
        (
            "shared/src/adapters/aws/s3.rs",
            "list_objects_v2",
            &[Consumer],
        ),
        (
            "shared/src/adapters/aws/eventbridge.rs",
            "put_events",
            &[Consumer],
        ),
        ("shared/src/adapters/aws/sns.rs", "publish", &[Consumer]),
        (
            "shared/src/adapters/aws/dynamodb/records.rs",
            "put_item",
            &[Consumer],
        ),
        (
            "shared/src/adapters/aws/dynamodb/apply.rs",
            "update_item",
            &[Consumer],
        ),
        (
            "shared/src/adapters/aws/dynamodb/seen.rs",
            "update_item",
            &[Consumer],
        ),
        (
            "shared/src/adapters/aws/dynamodb/ledger.rs",
            "update_item",
            &[Consumer],
        ),
        (
            "shared/src/adapters/aws/dynamodb/store.rs",
            "update_item",
            &[Consumer],
        ),
        (
            "shared/src/adapters/aws/dynamodb/store.rs",
            "get_item",
            &[Consumer, Reconcile],
        ),
        (
            "shared/src/adapters/aws/dynamodb/absorbed.rs",
            "get_item",
            &[Reconcile],
        ),
        // The rate budgets Slack and SmartLead calls share.
        (
            "shared/src/adapters/aws/dynamodb/budget.rs",
            "update_item",
            &[Consumer, Reconcile],
        ),
        ("shared/src/adapters/aws/dynamodb/store.rs", "query", &[]),
        // The indexes' lists (CLI).
        (
            "shared/src/adapters/aws/dynamodb/index.rs",
            "query",
            &[Lists],
        ),
        // The lists' details: a page of leads' items (CLI).
        (
            "shared/src/adapters/aws/dynamodb/index.rs",
            "batch_get_item",
            &[Lists],
        ),
        // The kept records over their days and shards (CLI, local stack).
        ("shared/src/adapters/aws/dynamodb/records.rs", "query", &[]),
        ("shared/src/adapters/aws/dynamodb/store.rs", "scan", &[]),
        (
            "shared/src/adapters/aws/dynamodb/store.rs",
            "create_table",
            &[],
        ),
        (
            "shared/src/adapters/aws/dynamodb/store.rs",
            "update_time_to_live",
            &[],
        ),
        // The consumer queues effects and delays their retries.
        (
            "shared/src/adapters/aws/sqs.rs",
            "send_message_batch",
            &[Consumer],
        ),
        (
            "shared/src/adapters/aws/sqs.rs",
            "change_message_visibility_batch",
            &[Consumer],
        ),
        ("shared/src/adapters/aws/redrive.rs", "receive_message", &[]),
        (
            "shared/src/adapters/aws/redrive.rs",
            "send_message_batch",
            &[],
        ),
        (
            "shared/src/adapters/aws/redrive.rs",
            "delete_message_batch",
            &[],
        ),
        (
            "shared/src/adapters/aws/redrive.rs",
            "change_message_visibility_batch",
            &[],
        ),
    ];

    /// Every operation of the AWS SDK crates in the build: snake_case name
    /// -> IAM service prefixes (read from each crate's `src/operation/`).
    fn sdk_operations() -> BTreeMap<String, BTreeSet<String>> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // Offline, and for this host only: a build downloads the packages of
        // the platform it builds for, not those of every platform in
        // Cargo.lock (`android_system_properties`, ...), so an unfiltered
        // `cargo metadata --offline` fails on a fresh CARGO_HOME.
        let out = std::process::Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--offline"])
            .args(["--filter-platform", &host_triple()])
            .current_dir(pipeline::workspace_root())
            .output()
            .expect("cargo metadata");
        assert!(
            out.status.success(),
            "cargo metadata: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata");
        let mut ops: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for p in meta["packages"].as_array().expect("packages") {
            let Some(service) = p["name"].as_str().and_then(|n| n.strip_prefix("aws-sdk-")) else {
                continue;
            };
            let prefix = match service {
                "eventbridge" => "events",
                "cloudwatchlogs" => "logs",
                other => other,
            };
            let manifest = std::path::PathBuf::from(p["manifest_path"].as_str().unwrap());
            let dir = manifest.parent().unwrap().join("src/operation");
            for e in std::fs::read_dir(&dir).expect("operations").flatten() {
                if e.path().is_dir() {
                    let op = e.file_name().to_string_lossy().into_owned();
                    ops.entry(op).or_default().insert(prefix.to_owned());
                }
            }
        }
        assert!(ops.len() > 100, "{} SDK operations found", ops.len());
        ops
    }

    /// The triple of the machine the tests run on (`rustc -vV`'s `host:`).
    fn host_triple() -> String {
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let out = std::process::Command::new(rustc)
            .arg("-vV")
            .output()
            .expect("rustc -vV");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix("host: "))
            .expect("rustc -vV names the host")
            .to_owned()
    }

    /// `.operation()` calls of the non-test code of the .rs files in `dir`
    /// and below.
    fn sdk_calls_in(
        root: &std::path::Path,
        dir: &str,
        ops: &BTreeMap<String, BTreeSet<String>>,
    ) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                let sub = format!("{dir}/{}", e.file_name().to_string_lossy());
                out.extend(sdk_calls_in(root, &sub, ops));
                continue;
            }
            if path.extension().and_then(|x| x.to_str()) != Some("rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let file = format!("{dir}/{}", e.file_name().to_string_lossy());
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for part in line.split('.').skip(1) {
                    if let Some(name) = part
                        .strip_suffix("()")
                        .or_else(|| part.split_once("()").map(|(n, _)| n))
                    {
                        if ops.contains_key(name) {
                            out.insert((file.clone(), name.to_owned()));
                        }
                    }
                }
            }
        }
        out
    }

    /// The IAM action of an SDK operation; DynamoDB authorizes the items of
    /// a `TransactWriteItems` as their own actions (here Put and Update).
    /// `a` and `b` hold the same: what only `a` holds is `only_a`'s finding,
    /// what only `b` holds `only_b`'s.
    fn assert_same<T: Ord + std::fmt::Debug>(
        a: &BTreeSet<T>,
        b: &BTreeSet<T>,
        only_a: &str,
        only_b: &str,
    ) {
        let extra: Vec<_> = a.difference(b).collect();
        assert!(extra.is_empty(), "{only_a}: {extra:?}");
        let missing: Vec<_> = b.difference(a).collect();
        assert!(missing.is_empty(), "{only_b}: {missing:?}");
    }

    fn iam_actions(op: &str, ops: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
        if op == "transact_write_items" {
            return vec!["dynamodb:PutItem".into(), "dynamodb:UpdateItem".into()];
        }
        // ListObjectsV2 is authorized as s3:ListBucket
        // (https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html).
        if op == "list_objects_v2" {
            return vec!["s3:ListBucket".into()];
        }
        // SQS's batch calls are authorized as their single-message actions
        // (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-api-permissions-reference.html).
        if let Some(single) = op
            .strip_suffix("_batch")
            .filter(|_| ops[op].contains("sqs"))
        {
            return iam_actions(single, ops);
        }
        let services = &ops[op];
        assert_eq!(services.len(), 1, "{op} is in several SDKs: {services:?}");
        let pascal: String = op
            .split('_')
            .map(|w| w[..1].to_ascii_uppercase() + &w[1..])
            .collect();
        vec![format!("{}:{pascal}", services.iter().next().unwrap())]
    }

    /// The list verbs' policy grants their reads and nothing else: the
    /// index queries on the indexes only, the page's items on the table,
    /// and the stack's outputs and parameters the CLI resolves it by.
    #[test]
    fn the_lists_policy_grants_exactly_the_list_verbs_reads() {
        let t = t();
        let ops = sdk_operations();
        let mut called: BTreeSet<String> = SDK_CALLS
            .iter()
            .filter(|(_, _, c)| c.contains(&Lists))
            .flat_map(|(_, op, _)| iam_actions(op, &ops))
            .collect();
        // How the CLI finds the stack's table (cli/src/aws.rs, outside
        // the files SDK_CALLS reads).
        called.insert("cloudformation:DescribeStacks".into());
        let p = t.props("ListsReadPolicy").unwrap();
        let mut granted = BTreeSet::new();
        for s in p["PolicyDocument"]["Statement"].as_sequence().unwrap() {
            assert_eq!(s["Effect"], "Allow");
            let action = s["Action"].as_str().unwrap().to_owned();
            let resource = format!("{:?}", s["Resource"]);
            let on = match action.as_str() {
                "dynamodb:Query" => "StateTable.Arn}/index/*",
                "dynamodb:BatchGetItem" => "StateTable.Arn",
                "cloudformation:DescribeStacks" => "AWS::StackId",
                other => panic!("{other} granted"),
            };
            assert!(resource.contains(on), "{action} on {resource}");
            granted.insert(action);
        }
        assert_eq!(granted, called);
        assert!(format!("{:?}", t.0["Outputs"]["ListsReadPolicyArn"]).contains("ListsReadPolicy"));
    }

    #[test]
    fn each_function_is_granted_exactly_the_actions_its_code_calls() {
        let t = t();
        let want = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(actions(&t, "IngestFunction"), want(INGEST_IAM_ACTIONS));
        assert_eq!(actions(&t, "ConsumerFunction"), want(CONSUMER_IAM_ACTIONS));
        // Every SDK call in the code is listed, and every listed call is there.
        let root = pipeline::workspace_root();
        let ops = sdk_operations();
        let mut found = BTreeSet::new();
        let mut dirs = vec!["shared/src".to_owned()];
        for e in std::fs::read_dir(root.join("functions")).unwrap().flatten() {
            dirs.push(format!("functions/{}/src", e.file_name().to_string_lossy()));
        }
        for dir in &dirs {
            found.extend(sdk_calls_in(&root, dir, &ops));
        }
        let listed: BTreeSet<(String, String)> = SDK_CALLS
            .iter()
            .map(|(f, op, _)| (f.to_string(), op.to_string()))
            .collect();
        assert_same(
            &found,
            &listed,
            "SDK calls not in SDK_CALLS (who makes them?)",
            "SDK_CALLS lists calls the code no longer makes",
        );
        // Each function is granted exactly the actions of its calls.
        for (function, me) in [
            ("IngestFunction", Ingest),
            ("ConsumerFunction", Consumer),
            ("ReconcileFunction", Reconcile),
        ] {
            let called: BTreeSet<String> = SDK_CALLS
                .iter()
                .filter(|(_, _, c)| c.contains(&me))
                .flat_map(|(_, op, _)| iam_actions(op, &ops))
                .collect();
            let granted = actions(&t, function);
            assert_same(
                &called,
                &granted,
                &format!("{function} calls without a grant"),
                &format!("{function} is granted actions no call needs"),
            );
        }
    }
}

/// Checks of the template's security and monitoring (hardening).
#[cfg(test)]
mod hardening {
    use super::*;
    use xtask::pipeline::template::{scalar, Value};

    fn t() -> Template {
        Template::load(&pipeline::workspace_root()).expect("template")
    }

    /// `(logical id, resource)` of every resource of a type.
    fn of_type<'a>(t: &'a Template, ty: &str) -> Vec<(String, &'a Value)> {
        t.0["Resources"]
            .as_mapping()
            .expect("Resources")
            .iter()
            .filter(|(_, r)| r["Type"] == ty)
            .filter_map(|(k, r)| Some((k.as_str()?.to_owned(), r)))
            .collect()
    }

    /// The target of `!Ref X`, `!GetAtt X.Attr` or `!Sub "${X.Attr}..."`'s first name.
    fn target(v: &Value) -> Option<String> {
        match v {
            Value::Tagged(t) if t.tag == "!Ref" || t.tag == "!GetAtt" => t
                .value
                .as_str()
                .map(|s| s.split('.').next().unwrap_or(s).to_owned()),
            _ => None,
        }
    }

    fn seq(v: &Value) -> Vec<&Value> {
        match v {
            Value::Sequence(s) => s.iter().collect(),
            Value::Null => vec![],
            one => vec![one],
        }
    }

    fn is_tls_deny(s: &Value, queue: &str) -> bool {
        let cond = &s["Condition"]["Bool"]["aws:SecureTransport"];
        s["Effect"] == "Deny"
            && s["Principal"] == "*"
            && seq(&s["Action"]).iter().any(|a| **a == "sqs:*")
            && (*cond == "false" || *cond == false)
            && seq(&s["Resource"])
                .iter()
                .any(|r| target(r).as_deref() == Some(queue))
    }

    /// The consumer sends a webhook whose effects were not queued back to
    /// the queue that invokes it, on purpose and bounded (`REQUEUE_FOR`,
    /// 25 hours). Lambda stops an SQS -> function -> same queue chain after
    /// 16 invocations unless the function's `RecursiveLoop` is `Allow`
    /// (<https://docs.aws.amazon.com/lambda/latest/dg/invocation-recursion.html>):
    /// no stand-in enforces this.
    #[test]
    fn the_consumer_may_send_to_the_queue_that_invokes_it() {
        let t = t();
        let f = &t.0["Resources"]["ConsumerFunction"]["Properties"];
        assert_eq!(f["RecursiveLoop"], "Allow");
        let url = &f["Environment"]["Variables"]["WEBHOOK_QUEUE_URL"];
        assert!(
            matches!(url, Value::Tagged(x) if x.tag == "!Ref" && x.value == "WebhookQueue"),
            "{url:?}"
        );
    }

    #[test]
    fn every_queue_refuses_requests_without_tls() {
        let t = t();
        let queues = of_type(&t, "AWS::SQS::Queue");
        assert!(queues.len() >= 3, "{queues:?}");
        let mut policies: Vec<(Vec<String>, &Value)> = vec![];
        for (_, p) in of_type(&t, "AWS::SQS::QueuePolicy") {
            let qs = seq(&p["Properties"]["Queues"])
                .into_iter()
                .filter_map(target)
                .collect();
            policies.push((qs, &p["Properties"]["PolicyDocument"]));
        }
        for (_, p) in of_type(&t, "AWS::SQS::QueueInlinePolicy") {
            let qs = target(&p["Properties"]["Queue"]).into_iter().collect();
            policies.push((qs, &p["Properties"]["PolicyDocument"]));
        }
        for (q, _) in &queues {
            let mine: Vec<&&Value> = policies
                .iter()
                .filter(|(qs, _)| qs.contains(q))
                .map(|(_, d)| d)
                .collect();
            assert!(
                mine.len() == 1,
                "{q}: {} queue policies (CloudFormation keeps only one)",
                mine.len()
            );
            assert!(
                seq(&mine[0]["Statement"]).iter().any(|s| is_tls_deny(s, q)),
                "{q}: no Deny of sqs:* when aws:SecureTransport is false"
            );
        }
    }

    fn grants_cloudwatch(statements: &Value, actions: &[&str]) -> bool {
        seq(statements).iter().any(|s| {
            s["Effect"] == "Allow"
                && seq(&s["Principal"]["Service"])
                    .iter()
                    .any(|p| **p == "cloudwatch.amazonaws.com")
                && actions
                    .iter()
                    .all(|a| seq(&s["Action"]).iter().any(|x| *x == a))
        })
    }

    #[test]
    fn cloudwatch_can_publish_to_every_topic_an_alarm_notifies() {
        let t = t();
        let resources = t.0["Resources"].as_mapping().unwrap();
        let mut topics = std::collections::BTreeSet::new();
        for (name, r) in resources {
            if r["Type"] != "AWS::CloudWatch::Alarm" {
                continue;
            }
            let actions = seq(&r["Properties"]["AlarmActions"]);
            assert!(!actions.is_empty(), "{name:?} notifies no one");
            for a in actions {
                topics.insert(target(a).unwrap_or_else(|| panic!("{name:?}: action {a:?}")));
            }
        }
        assert!(!topics.is_empty());
        for topic in topics {
            let r = t.resource(&topic).unwrap();
            assert_eq!(r["Type"], "AWS::SNS::Topic", "{topic}");
            let key = &r["Properties"]["KmsMasterKeyId"];
            assert!(
                !key.as_str().is_some_and(|k| k.contains("alias/aws/sns")),
                "{topic}: CloudWatch cannot use the AWS managed key alias/aws/sns"
            );
            if !key.is_null() {
                let k = target(key).unwrap_or_else(|| panic!("{topic}: key {key:?}"));
                let kr = t.resource(&k).unwrap();
                assert_eq!(kr["Type"], "AWS::KMS::Key", "{k}");
                assert!(
                    grants_cloudwatch(
                        &kr["Properties"]["KeyPolicy"]["Statement"],
                        &["kms:Decrypt", "kms:GenerateDataKey*"]
                    ),
                    "{k}: the key policy does not let cloudwatch.amazonaws.com use it"
                );
            }
            // A topic policy lets CloudWatch publish, for this account only.
            let policy = resources
                .values()
                .find(|p| {
                    p["Type"] == "AWS::SNS::TopicPolicy"
                        && seq(&p["Properties"]["Topics"])
                            .iter()
                            .any(|x| target(x).as_deref() == Some(topic.as_str()))
                })
                .unwrap_or_else(|| panic!("{topic}: no topic policy"));
            let statements = &policy["Properties"]["PolicyDocument"]["Statement"];
            assert!(grants_cloudwatch(statements, &["sns:Publish"]), "{topic}");
            assert!(
                seq(statements)
                    .iter()
                    .any(|s| !s["Condition"]["StringEquals"]["aws:SourceAccount"].is_null()),
                "{topic}: the publish grant is not limited to the account (aws:SourceAccount)"
            );
        }
    }

    fn num(t: &Template, v: &Value) -> f64 {
        t.resolve(v).and_then(|s| s.parse().ok()).expect("number")
    }

    /// A metric: namespace, name, dimensions.
    type Metric = (String, String, Vec<(String, Value)>);

    /// The namespace of the stack's own metrics, as the template writes it.
    fn stack_ns() -> String {
        smartlead::metrics::stack_namespace("${AWS::StackName}")
    }

    /// A plain string, or the text of a `!Sub` (placeholders unresolved).
    fn text(v: &Value) -> Option<String> {
        match v {
            Value::Tagged(t) if t.tag == "!Sub" => t.value.as_str().map(str::to_owned),
            other => other.as_str().map(str::to_owned),
        }
    }

    /// Every metric an alarm reads.
    fn alarm_metrics(r: &Value) -> Vec<Metric> {
        let dims = |d: &Value| {
            seq(d)
                .iter()
                .map(|x| {
                    (
                        x["Name"].as_str().unwrap_or("").to_owned(),
                        x["Value"].clone(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let p = &r["Properties"];
        let mut out = vec![];
        if let Some(name) = p["MetricName"].as_str() {
            let ns = text(&p["Namespace"]).unwrap_or_default();
            out.push((ns, name.to_owned(), dims(&p["Dimensions"])));
        }
        for m in seq(&p["Metrics"]) {
            let m = &m["MetricStat"]["Metric"];
            if let Some(name) = m["MetricName"].as_str() {
                let ns = text(&m["Namespace"]).unwrap_or_default();
                out.push((ns, name.to_owned(), dims(&m["Dimensions"])));
            }
        }
        out
    }

    fn alarms_on(t: &Template, ns: &str, name: &str, want: &[(&str, &str)]) -> Vec<String> {
        of_type(t, "AWS::CloudWatch::Alarm")
            .into_iter()
            .filter(|(_, r)| {
                alarm_metrics(r).iter().any(|(n, m, d)| {
                    n == ns
                        && m == name
                        && d.len() == want.len()
                        && want.iter().all(|(k, v)| {
                            d.iter().any(|(dk, dv)| {
                                dk == k && (dv == *v || target(dv).as_deref() == Some(*v))
                            })
                        })
                })
            })
            .map(|(k, _)| k)
            .collect()
    }

    #[test]
    fn refused_and_throttled_webhooks_raise_alarms() {
        let t = t();
        // The metric names and dimensions the code emits (EMF: the full set and
        // a per-function roll-up).
        let root = pipeline::workspace_root();
        let ingest = std::fs::read_to_string(root.join("shared/src/app/ingest.rs")).unwrap();
        // The consumer's metric names: the batch's and the refused items'.
        let consumer = ["batch.rs", "apply.rs"]
            .map(|f| std::fs::read_to_string(root.join("shared/src/app/consumer").join(f)).unwrap())
            .concat();
        assert!(ingest.contains(r#"count("Rejected", &[("Reason", r.code())])"#));
        assert!(consumer.contains(r#""RejectedEvents""#));
        let unauthorized = smartlead::app::ingest::Rejection::Unauthorized.code();
        let ns = stack_ns();
        let ns = ns.as_str();
        assert!(
            !alarms_on(
                &t,
                ns,
                "Rejected",
                &[("Function", "ingest"), ("Reason", unauthorized)]
            )
            .is_empty(),
            "no alarm on 401s (Rejected, Reason={unauthorized})"
        );
        // HTTP APIs publish 429s only inside `4xx`: the 4xx the function did
        // not answer itself are the throttled ones.
        let throttled: Vec<String> =
            alarms_on(&t, "AWS/ApiGateway", "4xx", &[("ApiId", "HttpApi")])
                .into_iter()
                .filter(|a| alarms_on(&t, ns, "Rejected", &[("Function", "ingest")]).contains(a))
                .collect();
        assert_eq!(
            throttled.len(),
            1,
            "no alarm on API 4xx minus the ingest's own rejections"
        );
        assert!(
            !alarms_on(&t, ns, "RejectedEvents", &[("Function", "consumer")]).is_empty(),
            "no alarm on the consumer's rejected events"
        );
        // Part of an event DynamoDB refused even trimmed.
        assert!(consumer.contains(r#""StoreRefusedItems""#));
        assert!(
            !alarms_on(&t, ns, "StoreRefusedItems", &[("Function", "consumer")]).is_empty(),
            "no alarm on items DynamoDB refused"
        );
        // A webhook the queue refused (503) is alarmed whatever the front:
        // the Function URL has no API Gateway metric.
        assert!(ingest.contains(r#"("QueueFailures", 1.0, Unit::Count)"#));
        assert!(
            !alarms_on(&t, ns, "QueueFailures", &[("Function", "ingest")]).is_empty(),
            "no alarm on webhooks the queue did not take"
        );
        assert!(
            alarms_on(&t, ns, "Unattributed", &[("Function", "consumer")])
                .contains(&"UnattributedEventsAlarm".to_owned()),
            "no alarm on lead events kept without a lead e-mail"
        );
        // Alarms only read metrics that exist: custom ones carry the function's name.
        for (name, r) in of_type(&t, "AWS::CloudWatch::Alarm") {
            for (n, m, d) in alarm_metrics(r) {
                if n == ns {
                    let f = d
                        .iter()
                        .find(|(k, _)| k == "Function")
                        .map(|(_, v)| v.clone());
                    assert!(
                        f == Some("ingest".into())
                            || f == Some("consumer".into())
                            || f == Some("reconcile".into()),
                        "{name}: {m} without a Function dimension"
                    );
                }
            }
        }
    }

    /// The consumer starts without a Slack URL or SmartLead
    /// API key it cannot read from SSM; each failed read is counted (by
    /// `Effect`, rolled up by `Function`) and alarmed.
    #[test]
    fn unreadable_optional_parameters_raise_an_alarm() {
        let t = t();
        let root = pipeline::workspace_root();
        let ssm = std::fs::read_to_string(root.join("shared/src/adapters/aws/ssm.rs")).unwrap();
        assert!(ssm.contains(r#"&[("Effect", effect)],"#));
        assert!(ssm.contains(r#"&[("SecretReadFailures", 1.0, Unit::Count)],"#));
        assert_eq!(
            alarms_on(
                &t,
                &stack_ns(),
                "SecretReadFailures",
                &[("Function", "consumer")]
            ),
            ["SecretReadFailuresAlarm"]
        );
    }

    /// An agency's client URL answering 503 for want of its secret alarms
    /// (only in an agency's stack).
    #[test]
    fn unreadable_client_secrets_raise_an_alarm() {
        let t = t();
        let root = pipeline::workspace_root();
        let ingest = std::fs::read_to_string(root.join("shared/src/app/ingest.rs")).unwrap();
        assert!(ingest.contains(r#"self.metrics.count("ClientSecretsUnread", &[]);"#));
        let name = "IngestClientSecretsUnreadAlarm";
        assert_eq!(
            alarms_on(
                &t,
                &stack_ns(),
                "ClientSecretsUnread",
                &[("Function", "ingest")]
            ),
            [name]
        );
        assert_eq!(t.resource(name).unwrap()["Condition"], "HasClients");
    }

    /// The log-budget design: the ingest's queued webhooks print a short record line and
    /// no EMF document; metric filters on its log group publish `Received`
    /// and `Queued` (by `Function`, and by `Function` and `EventType` for the
    /// dashboard) from it, and the dashboard's ingest latency is the
    /// function's `Duration`.
    #[test]
    fn the_ingests_queued_lines_are_counted_by_metric_filters() {
        let t = t();
        let root = pipeline::workspace_root();
        let ingest = std::fs::read_to_string(root.join("shared/src/app/ingest.rs")).unwrap();
        // The fields the filters match and read (`Function` is the record's own).
        for f in [
            r#"("outcome", "queued".into())"#,
            r#"("EventType", et.metric_name().into())"#,
            "self.metrics.record(&props)",
        ] {
            assert!(ingest.contains(f), "the ingest's queued line lost {f}");
        }
        let mut published = vec![];
        for (name, r) in of_type(&t, "AWS::Logs::MetricFilter") {
            let p = &r["Properties"];
            if target(&p["LogGroupName"]).as_deref() != Some("IngestLogGroup") {
                continue;
            }
            assert_eq!(
                p["FilterPattern"].as_str(),
                Some(r#"{ $.outcome = "queued" && $.Function = "ingest" }"#),
                "{name}"
            );
            for m in seq(&p["MetricTransformations"]) {
                assert_eq!(text(&m["MetricNamespace"]), Some(stack_ns()), "{name}");
                assert_eq!(m["MetricValue"].as_str(), Some("1"), "{name}");
                assert_eq!(m["Unit"].as_str(), Some("Count"), "{name}");
                let dims: Vec<(String, String)> = seq(&m["Dimensions"])
                    .iter()
                    .map(|d| {
                        (
                            d["Key"].as_str().unwrap_or("").to_owned(),
                            d["Value"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect();
                published.push((m["MetricName"].as_str().unwrap_or("").to_owned(), dims));
            }
        }
        let f = ("Function".to_owned(), "$.Function".to_owned());
        let e = ("EventType".to_owned(), "$.EventType".to_owned());
        for want in [
            // `smartlead status`'s "received"
            ("Received".to_owned(), vec![f.clone()]),
            ("Queued".to_owned(), vec![f.clone()]),
            // the dashboard's "Webhooks queued by event type"
            ("Queued".to_owned(), vec![f.clone(), e.clone()]),
        ] {
            assert!(
                published.contains(&want),
                "no metric filter for {want:?}: {published:?}"
            );
        }
        let text = std::fs::read_to_string(root.join("template.yaml")).unwrap();
        assert!(
            !text.contains("IngestLatency"),
            "IngestLatency is no longer published"
        );
        assert!(
            text.contains(
                r#"["AWS/Lambda", "Duration", "FunctionName", "${IngestFunction}", {"stat": "p50""#
            ),
            "the dashboard shows the ingest's latency"
        );
    }

    /// The custom namespaces of the dashboard's graphs: a metric row's
    /// first field, a SEARCH's schema (`{"Namespace",Dimension,...}`).
    fn dashboard_namespaces(t: &Template) -> Vec<String> {
        let body = &t.props("Dashboard").unwrap()["DashboardBody"];
        let Value::Tagged(sub) = body else {
            panic!("the dashboard body is a !Sub: {body:?}")
        };
        let text = sub.value.as_sequence().map_or(&sub.value, |s| &s[0]);
        let json: serde_json::Value = serde_json::from_str(text.as_str().unwrap()).unwrap();
        let mut out = vec![];
        for w in json["widgets"].as_array().unwrap() {
            for row in w["properties"]["metrics"].as_array().into_iter().flatten() {
                let first = &row[0];
                if let Some(ns) = first.as_str().filter(|s| !s.starts_with('.')) {
                    out.push(ns.to_owned());
                }
                if let Some(e) = first["expression"].as_str() {
                    let schema = e.split_once('{').and_then(|(_, r)| r.split_once(','));
                    let ns = schema.map(|(ns, _)| ns.trim_matches('"').to_owned());
                    out.push(ns.unwrap_or_else(|| panic!("no metric schema in {e}")));
                }
            }
        }
        out.retain(|ns| !ns.starts_with("AWS/"));
        out
    }

    /// Two stacks in one account (staging, production)
    /// must share no custom metric and no alarm. A metric is its namespace,
    /// name and dimensions
    /// (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_concepts.html,
    /// "Namespaces" and "Dimensions"): with one fixed namespace and only
    /// `Function` dimensions, a staging stack's failures fired production's
    /// alarms. Every custom namespace the template names (metric filters,
    /// alarms, the dashboard) is the one the functions publish in (their
    /// `METRICS_NAMESPACE`, which `smartlead status` reads too), and it
    /// holds the stack's name.
    #[test]
    fn every_custom_metric_is_in_the_stacks_own_namespace() {
        let t = t();
        let want = stack_ns();
        assert!(want.contains("${AWS::StackName}"), "{want}");
        for (f, _) in super::tests::deployed_env() {
            let env = &t.props(f).unwrap()["Environment"]["Variables"];
            assert_eq!(text(&env["METRICS_NAMESPACE"]), Some(want.clone()), "{f}");
        }
        let mut filters = 0;
        for (name, r) in of_type(&t, "AWS::Logs::MetricFilter") {
            for m in seq(&r["Properties"]["MetricTransformations"]) {
                assert_eq!(text(&m["MetricNamespace"]), Some(want.clone()), "{name}");
                filters += 1;
            }
        }
        let mut alarms = 0;
        for (name, r) in of_type(&t, "AWS::CloudWatch::Alarm") {
            for (ns, m, _) in alarm_metrics(r) {
                if !ns.starts_with("AWS/") {
                    assert_eq!(ns, want, "{name}: {m}");
                    alarms += 1;
                }
            }
        }
        let dashboard = dashboard_namespaces(&t);
        for ns in &dashboard {
            assert_eq!(*ns, want, "the dashboard");
        }
        assert!(
            filters >= 3 && alarms >= 9 && dashboard.len() >= 3,
            "{filters} filters, {alarms} alarm metrics, {dashboard:?}"
        );
    }

    /// Resolves `!If`, `!Ref` (parameters, with `params` overriding defaults)
    /// and conditions; `None` for `AWS::NoValue`.
    pub(crate) fn eval(t: &Template, params: &[(&str, &str)], v: &Value) -> Option<Value> {
        match v {
            Value::Tagged(x) if x.tag == "!Ref" => {
                let name = x.value.as_str()?;
                if name == "AWS::NoValue" {
                    return None;
                }
                let given = params
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string());
                Some(Value::String(given.or_else(|| t.default(name).ok())?))
            }
            Value::Tagged(x) if x.tag == "!If" => {
                let s = x.value.as_sequence()?;
                let c = cond(t, params, &Value::String(s[0].as_str()?.to_owned()));
                eval(t, params, &s[if c { 1 } else { 2 }])
            }
            other => Some(other.clone()),
        }
    }

    pub(crate) fn cond(t: &Template, params: &[(&str, &str)], v: &Value) -> bool {
        let args = |x: &Value| x.as_sequence().cloned().unwrap_or_default();
        match v {
            Value::String(name) => cond(t, params, &t.0["Conditions"][name.as_str()]),
            Value::Tagged(x) => match x.tag.to_string().as_str() {
                "!Condition" => cond(t, params, &x.value),
                "!Not" => !cond(t, params, &args(&x.value)[0]),
                "!And" => args(&x.value).iter().all(|c| cond(t, params, c)),
                "!Or" => args(&x.value).iter().any(|c| cond(t, params, c)),
                "!Equals" => {
                    let a = args(&x.value);
                    let s = |v: &Value| eval(t, params, v).as_ref().and_then(scalar);
                    s(&a[0]) == s(&a[1])
                }
                other => panic!("condition function {other}"),
            },
            other => panic!("condition {other:?}"),
        }
    }

    #[test]
    fn the_scheduled_reconcile_is_off_by_default_and_alarms_on_gaps() {
        let t = t();
        let parts = [
            "ReconcileFunction",
            "ReconcileLogGroup",
            "ReconcileScheduleRole",
            "ReconcileScheduleRule",
            "ReconcileGapsAlarm",
            "ReconcileLeadsLeftAlarm",
            "ReconcileErrorsAlarm",
            "ReconcileInvokeConfig",
        ];
        for p in parts {
            assert_eq!(t.resource(p).unwrap()["Condition"], "HasReconcile", "{p}");
        }
        let on = Value::String("HasReconcile".into());
        assert!(!cond(&t, &[], &on), "off by default");
        assert!(cond(&t, &[("ReconcileSchedule", "rate(6 hours)")], &on));
        let rule = t.props("ReconcileScheduleRule").unwrap();
        assert_eq!(
            target(&rule["ScheduleExpression"]).as_deref(),
            Some("ReconcileSchedule")
        );
        assert_eq!(
            target(&rule["Target"]["Arn"]).as_deref(),
            Some("ReconcileFunction")
        );
        // The schedule's role may invoke that one function and nothing else.
        let role = t.props("ReconcileScheduleRole").unwrap();
        let st = &role["Policies"][0]["PolicyDocument"]["Statement"];
        assert_eq!(seq(st).len(), 1);
        assert_eq!(st[0]["Action"], "lambda:InvokeFunction");
        assert_eq!(
            target(&st[0]["Resource"]).as_deref(),
            Some("ReconcileFunction")
        );
        let trust = &role["AssumeRolePolicyDocument"]["Statement"][0];
        assert_eq!(trust["Principal"]["Service"], "scheduler.amazonaws.com");
        let env = &t.props("ReconcileFunction").unwrap()["Environment"]["Variables"];
        assert_eq!(
            target(&env["LOOKBACK_HOURS"]).as_deref(),
            Some("ReconcileLookbackHours")
        );
        assert_eq!(
            target(&env["DEDUP_TTL_DAYS"]).as_deref(),
            Some("DedupTtlDays")
        );
        // GapsFound > 0 notifies the alarm topic; the code emits it.
        let ns = stack_ns();
        let ns = ns.as_str();
        assert_eq!(
            alarms_on(&t, ns, "GapsFound", &[("Function", "reconcile")]),
            ["ReconcileGapsAlarm"]
        );
        // Leads a run had no time for alarm too: unchecked is not "no gaps".
        assert_eq!(
            alarms_on(&t, ns, "LeadsLeft", &[("Function", "reconcile")]),
            ["ReconcileLeadsLeftAlarm"]
        );
        let left = t.props("ReconcileLeadsLeftAlarm").unwrap();
        assert_eq!(left["ComparisonOperator"], "GreaterThanThreshold");
        assert_eq!(num(&t, &left["Threshold"]), 0.0);
        // Count mismatches are published but alarm nothing.
        assert!(alarms_on(&t, ns, "CountMismatches", &[("Function", "reconcile")]).is_empty());
        // One run at a time, and no Lambda retries of a failed run.
        let f = t.props("ReconcileFunction").unwrap();
        assert_eq!(num(&t, &f["ReservedConcurrentExecutions"]), 1.0);
        let inv = t.resource("ReconcileInvokeConfig").unwrap();
        assert_eq!(inv["Type"], "AWS::Lambda::EventInvokeConfig");
        assert_eq!(
            target(&inv["Properties"]["FunctionName"]).as_deref(),
            Some("ReconcileFunction")
        );
        assert_eq!(num(&t, &inv["Properties"]["MaximumRetryAttempts"]), 0.0);
        let alarm = t.props("ReconcileGapsAlarm").unwrap();
        assert_eq!(alarm["ComparisonOperator"], "GreaterThanThreshold");
        assert_eq!(num(&t, &alarm["Threshold"]), 0.0);
        assert_eq!(
            target(seq(&alarm["AlarmActions"])[0]).as_deref(),
            Some("AlarmTopic")
        );
        let read = |f: &str| std::fs::read_to_string(pipeline::workspace_root().join(f)).unwrap();
        let src =
            read("shared/src/app/reconcile/scheduled.rs") + &read("functions/reconcile/src/lib.rs");
        for m in [
            "\"GapsFound\"",
            "\"LeadsLeft\"",
            "\"CountMismatches\"",
            "\"EventsBackfilled\"",
            "Metrics::from_config(&config.metrics, \"reconcile\")",
        ] {
            assert!(src.contains(m), "{m}");
        }
    }

    #[test]
    fn a_function_url_without_an_api_throttle_gets_reserved_concurrency() {
        let t = t();
        let reserved = |params: &[(&str, &str)]| {
            let v = &t.props("IngestFunction").unwrap()["ReservedConcurrentExecutions"];
            eval(&t, params, v).map(|v| num(&t, &v))
        };
        let url_default = reserved(&[("EnableFunctionUrl", "true")]);
        assert!(
            url_default.is_some_and(|n| (10.0..=100.0).contains(&n)),
            "a Function URL (auth NONE) with no explicit IngestReservedConcurrency reserves {url_default:?}"
        );
        assert_eq!(
            reserved(&[]),
            None,
            "the API alone (throttled) reserves none"
        );
        let explicit = [
            ("EnableFunctionUrl", "true"),
            ("IngestReservedConcurrency", "7"),
        ];
        assert_eq!(reserved(&explicit), Some(7.0));
        assert_eq!(reserved(&[("IngestReservedConcurrency", "5")]), Some(5.0));
    }

    /// Since October 2025 a new Function URL needs both
    /// `lambda:InvokeFunctionUrl` and `lambda:InvokeFunction` in the
    /// function's resource policy, or every request gets 403
    /// (https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html). The
    /// second is limited to calls through the URL (`InvokedViaFunctionUrl`):
    /// nobody may invoke the function directly.
    #[test]
    fn a_function_url_is_granted_both_invoke_actions_and_only_through_the_url() {
        let t = t();
        let url = t.resource("IngestFunctionUrl").unwrap();
        assert_eq!(url["Properties"]["AuthType"], "NONE");
        let url_condition = &url["Condition"];
        assert_eq!(*url_condition, "HasFunctionUrl");
        let grants: Vec<(String, &Value)> = of_type(&t, "AWS::Lambda::Permission")
            .into_iter()
            .filter(|(_, r)| {
                target(&r["Properties"]["FunctionName"]).as_deref() == Some("IngestFunction")
            })
            .collect();
        let granting = |action: &str| -> Vec<&Value> {
            grants
                .iter()
                .filter(|(_, r)| r["Properties"]["Action"] == action)
                .map(|(_, r)| *r)
                .collect()
        };
        let url_grant = granting("lambda:InvokeFunctionUrl");
        assert_eq!(url_grant.len(), 1, "one lambda:InvokeFunctionUrl grant");
        assert_eq!(url_grant[0]["Properties"]["FunctionUrlAuthType"], "NONE");
        let invoke = granting("lambda:InvokeFunction");
        assert_eq!(
            invoke.len(),
            1,
            "no lambda:InvokeFunction grant for the URL"
        );
        for g in [url_grant[0], invoke[0]] {
            assert_eq!(
                g["Condition"], *url_condition,
                "granted whenever the URL exists"
            );
            assert_eq!(g["Properties"]["Principal"], "*");
        }
        assert_eq!(
            invoke[0]["Properties"]["InvokedViaFunctionUrl"], true,
            "lambda:InvokeFunction for anyone, not only through the URL"
        );
        for (name, r) in &grants {
            let a = &r["Properties"]["Action"];
            assert!(
                *a == "lambda:InvokeFunctionUrl" || *a == "lambda:InvokeFunction",
                "{name}: {a:?}"
            );
        }
    }

    fn days(t: &Template, resource: &str) -> f64 {
        num(t, &t.props(resource).unwrap()["MessageRetentionPeriod"]) / 86_400.0
    }

    fn bound(t: &Template, param: &str, which: &str) -> f64 {
        let v = &t.0["Parameters"][param][which];
        scalar(v)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{param} has no {which}"))
    }

    #[test]
    fn dedup_markers_outlive_every_way_a_message_comes_back() {
        let t = t();
        let default: u64 = t.default("DedupTtlDays").unwrap().parse().unwrap();
        assert_eq!(
            default,
            smartlead::adapters::aws::dynamodb::DEFAULT_DEDUP_TTL_DAYS,
            "the code's default marker TTL is the template's"
        );
        // The shortest TTL the stack accepts, against the longest paths back.
        let ttl = bound(&t, "DedupTtlDays", "MinValue");
        assert!(default as f64 >= ttl);
        let dlq = days(&t, "DeadLetterQueue");
        let queue = days(&t, "WebhookQueue");
        let margin = smartlead::adapters::aws::redrive::MARGIN_DAYS as f64;
        // A redriven message may wait in the queue before the consumer sees it.
        assert!(
            margin > queue,
            "redrive margin {margin} <= queue retention {queue}"
        );
        // Any message still in the DLQ (14 days from its first send, the queue's
        // time included) can be redriven while its marker lives.
        assert!(
            ttl > dlq + queue + margin,
            "marker TTL {ttl} days <= DLQ {dlq} + queue {queue} + margin {margin}"
        );
        assert!(ttl - margin > dlq);
        // The archive replays at most ArchiveRetentionDays back: no "forever".
        assert!(bound(&t, "ArchiveRetentionDays", "MinValue") >= 1.0);
        let archive = bound(&t, "ArchiveRetentionDays", "MaxValue");
        assert!(
            ttl >= archive + margin,
            "marker TTL {ttl} days < archive retention {archive} + margin {margin}"
        );
        // The consumer uses the parameter, and the CLI can read it from the stack.
        let env = &t.props("ConsumerFunction").unwrap()["Environment"]["Variables"];
        assert_eq!(
            target(&env["DEDUP_TTL_DAYS"]).as_deref(),
            Some("DedupTtlDays")
        );
        let out = &t.0["Outputs"]["DedupTtlDays"]["Value"];
        assert_eq!(target(out).as_deref(), Some("DedupTtlDays"));
    }

    /// Days a claim-checked body (`raw/`, ingest.rs) is kept with
    /// `DedupTtlDays` = `ttl`: the shortest expiry of the lifecycle rules
    /// that reach it. S3 expires an object no earlier than its days after
    /// creation (rounded up to midnight UTC):
    /// https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-expire-general-considerations.html
    fn body_days(t: &Template, ttl: &str) -> f64 {
        let rules = &t.props("ClaimCheckBucket").unwrap()["LifecycleConfiguration"]["Rules"];
        seq(rules)
            .into_iter()
            .filter(|r| r["Status"] == "Enabled" && !r["ExpirationInDays"].is_null())
            .filter(|r| {
                let p = scalar(&r["Prefix"])
                    .or_else(|| scalar(&r["Filter"]["Prefix"]))
                    .unwrap_or_default();
                "raw/x".starts_with(&p) || p.starts_with("raw/")
            })
            .map(|r| {
                let v = eval(t, &[("DedupTtlDays", ttl)], &r["ExpirationInDays"]);
                num(t, &v.expect("expiration days"))
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// A body over the SQS limit waits in S3 while its message is away:
    /// every way the message comes back must end before the body expires,
    /// whatever `DedupTtlDays` the stack is given.
    #[test]
    fn claim_checked_bodies_outlive_every_way_a_message_comes_back() {
        let t = t();
        let ingest =
            std::fs::read_to_string(pipeline::workspace_root().join("shared/src/app/ingest.rs"))
                .unwrap();
        assert!(
            ingest.contains(r#"format!("raw/"#),
            "bodies moved out of raw/"
        );
        let queue = days(&t, "WebhookQueue");
        let dlq = days(&t, "DeadLetterQueue");
        let archive = bound(&t, "ArchiveRetentionDays", "MaxValue");
        let min_ttl = bound(&t, "DedupTtlDays", "MinValue").to_string();
        let default_ttl = t.default("DedupTtlDays").unwrap();
        for ttl in [min_ttl.as_str(), default_ttl.as_str(), "400"] {
            let body = body_days(&t, ttl);
            assert!(body.is_finite(), "no lifecycle rule expires raw/");
            // `smartlead redrive`'s window (the code's), then the queue's wait.
            let days_n: u64 = ttl.parse().unwrap();
            let window =
                smartlead::adapters::aws::redrive::max_age(days_n).as_secs() as f64 / 86_400.0;
            for (way, last) in [
                ("the queue", queue),
                ("the DLQ, then a redrive", dlq + queue),
                ("a redrive", window + queue),
                ("an archive replay", archive),
            ] {
                assert!(
                    last < body,
                    "DedupTtlDays {ttl}: {way} brings a message back up to {last} days, its body expires after {body}"
                );
            }
        }
    }

    /// checkov runs in scripts/test.sh; a check that does not fit this
    /// design is skipped on its resource, never without its reason.
    #[test]
    fn every_checkov_skip_says_why() {
        let t = t();
        let mut skips = 0;
        for (name, r) in t.0["Resources"].as_mapping().unwrap() {
            for s in seq(&r["Metadata"]["checkov"]["skip"]) {
                skips += 1;
                let id = s["id"].as_str().unwrap_or_default();
                assert!(id.starts_with("CKV_"), "{name:?}: skip {s:?}");
                let why = s["comment"].as_str().unwrap_or_default();
                assert!(
                    why.len() >= 30,
                    "{name:?}: {id} is skipped without a reason"
                );
            }
        }
        assert!(skips > 0, "no skip found: the metadata moved?");
    }

    /// The claim-check bucket is versioned (noncurrent versions expire too)
    /// and logs access to a bucket of the stack's own, which lets S3's log
    /// delivery write for this bucket and account only:
    /// https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html
    #[test]
    fn the_claim_check_bucket_is_versioned_and_logs_access_to_its_own_bucket() {
        let t = t();
        let b = t.props("ClaimCheckBucket").unwrap();
        assert_eq!(b["VersioningConfiguration"]["Status"], "Enabled");
        for (name, r) in of_type(&t, "AWS::S3::Bucket") {
            let p = &r["Properties"];
            if p["VersioningConfiguration"]["Status"] != "Enabled" {
                continue;
            }
            for rule in seq(&p["LifecycleConfiguration"]["Rules"]) {
                if !rule["ExpirationInDays"].is_null() {
                    let days = &rule["NoncurrentVersionExpiration"]["NoncurrentDays"];
                    assert!(
                        !days.is_null(),
                        "{name}: expired versions are kept for ever"
                    );
                }
            }
        }
        let logs = target(&b["LoggingConfiguration"]["DestinationBucketName"])
            .expect("the claim-check bucket logs access");
        assert_eq!(t.resource(&logs).unwrap()["Type"], "AWS::S3::Bucket");
        let prefix = b["LoggingConfiguration"]["LogFilePrefix"].as_str().unwrap();
        let policy = of_type(&t, "AWS::S3::BucketPolicy")
            .into_iter()
            .find(|(_, p)| target(&p["Properties"]["Bucket"]).as_deref() == Some(logs.as_str()))
            .map(|(_, p)| &p["Properties"]["PolicyDocument"]["Statement"])
            .expect("a policy on the log bucket");
        let delivery = seq(policy)
            .into_iter()
            .find(|s| s["Principal"]["Service"] == "logging.s3.amazonaws.com")
            .expect("S3's log delivery may write");
        assert_eq!(delivery["Effect"], "Allow");
        assert_eq!(delivery["Action"], "s3:PutObject");
        assert!(format!("{:?}", delivery["Resource"]).contains(prefix));
        let c = &delivery["Condition"];
        assert_eq!(
            target(&c["ArnLike"]["aws:SourceArn"]).as_deref(),
            Some("ClaimCheckBucket")
        );
        assert!(!c["StringEquals"]["aws:SourceAccount"].is_null());
    }

    /// A message no one receives (the event source mapping disabled or
    /// broken) never reaches the DLQ: the queue keeps it SQS's most, 14
    /// days, and the age alarm fires long before. The DLQ keeps a message's
    /// first enqueue time (standard queues), so it must keep messages at
    /// least as long as the queue:
    /// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html
    #[test]
    fn the_queue_keeps_messages_14_days_and_alarms_on_their_age_long_before() {
        let t = t();
        let queue = days(&t, "WebhookQueue");
        assert_eq!(queue, 14.0, "the queue's retention");
        assert!(days(&t, "DeadLetterQueue") >= queue);
        let alarms = alarms_on(
            &t,
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            &[("QueueName", "WebhookQueue")],
        );
        assert_eq!(alarms, ["QueueAgeAlarm"]);
        let a = t.props("QueueAgeAlarm").unwrap();
        assert_eq!(a["ComparisonOperator"], "GreaterThanThreshold");
        assert_eq!(
            target(&a["Threshold"]).as_deref(),
            Some("QueueAgeAlarmSeconds")
        );
        // The latest it can fire: the highest threshold the stack accepts,
        // held for the whole evaluation window.
        let threshold = bound(&t, "QueueAgeAlarmSeconds", "MaxValue");
        let window = num(&t, &a["Period"]) * num(&t, &a["EvaluationPeriods"]);
        let fires_after = (threshold + window) / 86_400.0;
        assert!(
            fires_after <= queue / 10.0,
            "QueueAgeAlarm may fire {fires_after} days in, of the queue's {queue}"
        );
        assert!(!seq(&a["AlarmActions"]).is_empty());
    }

    /// `sam local` points the functions at the stand-ins through variables
    /// that exist only when `LocalEndpoint` is set (only `sam local` sets it): deployed with
    /// the defaults, no function has a local secret, endpoint or switch,
    /// while everything the code reads in AWS is there either way.
    #[test]
    fn local_only_variables_exist_only_under_sam_local() {
        let local_vars = super::tests::local_only_env();
        let t = t();
        assert_eq!(t.default("LocalEndpoint").unwrap(), "");
        let local = [("LocalEndpoint", "http://127.0.0.1:5000")];
        for (f, aws_env) in super::tests::deployed_env().into_iter().take(2) {
            let vars = t.props(f).unwrap()["Environment"]["Variables"]
                .as_mapping()
                .unwrap();
            let mut local_only = 0;
            for (k, v) in vars {
                let k = k.as_str().unwrap();
                let deployed = eval(&t, &[], v);
                let under_sam_local = eval(&t, &local, v);
                if local_vars.contains(&k) || k.starts_with("AWS_") {
                    local_only += 1;
                    assert_eq!(deployed, None, "{f}: {k} is set in AWS");
                    assert!(under_sam_local.is_some(), "{f}: {k} missing locally");
                } else {
                    assert!(aws_env.contains(&k), "{f}: {k} is in no list");
                    assert_eq!(deployed, under_sam_local, "{f}: LocalEndpoint changes {k}");
                }
            }
            assert!(local_only >= 3, "{f}: the local-only variables are gone");
        }
        let endpoint = |p: &[(&str, &str)]| {
            let v = &t.props("ConsumerFunction").unwrap()["Environment"]["Variables"];
            eval(&t, p, &v["AWS_ENDPOINT_URL_DYNAMODB"]).and_then(|v| scalar(&v))
        };
        assert_eq!(endpoint(&local).as_deref(), Some("http://127.0.0.1:5000"));
    }

    /// The metrics (EMF documents, the ingest's queued lines the metric
    /// filters count) have no level of their own: Lambda drops them above
    /// INFO, and every alarm would go quiet.
    #[test]
    fn the_log_level_lets_every_metric_through() {
        let t = t();
        let level = t.0["Globals"]["Function"]["LoggingConfig"]["ApplicationLogLevel"]
            .as_str()
            .expect("a global application log level");
        assert!(
            ["TRACE", "DEBUG", "INFO"].contains(&level),
            "ApplicationLogLevel {level} drops the metric lines"
        );
        for (name, r) in t.0["Resources"].as_mapping().unwrap() {
            let own = &r["Properties"]["LoggingConfig"]["ApplicationLogLevel"];
            if let Some(l) = own.as_str() {
                assert!(["TRACE", "DEBUG", "INFO"].contains(&l), "{name:?}: {l}");
            }
        }
    }

    /// CloudFormation refuses a deploy with `LocalEndpoint` set (a rule that
    /// `sam local` does not evaluate), so a stack can never point its
    /// functions at a loopback stand-in.
    #[test]
    fn a_deploy_with_a_local_endpoint_is_refused() {
        let t = t();
        let rules = t.0["Rules"].as_mapping().expect("a Rules section");
        let holds = |p: &[(&str, &str)]| {
            rules.values().all(|r| {
                r["Assertions"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .all(|a| cond(&t, p, &a["Assert"]))
            })
        };
        assert!(holds(&[]), "the defaults must deploy");
        for endpoint in ["http://127.0.0.1:5000", "http://host.docker.internal:5000"] {
            assert!(!holds(&[("LocalEndpoint", endpoint)]), "{endpoint} deploys");
        }
    }
}
