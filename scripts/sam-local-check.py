"""Checks for scripts/sam-local-test.sh, against the stand-ins (boto3 comes with moto).

  --moto URL --dynamodb URL --env ENV_FILE VERB ARGS
  ingest-answer OUT            the invoke answered 200 {"status": "received", "id": ...}
  no-batch-failures OUT        the consumer answered {"batchItemFailures": []}
  queue-holds DIR SAVE         the queue holds each DIR/*.json once, byte for byte
                               (received and deleted; saved to SAVE)
  queue-holds-one FILE         the queue holds exactly what `curl -d @FILE` sent
  queued-as-sqs-event SAVED EVENT   the saved messages as the SQS event Lambda gets
  state-after BATCH SAVE       DynamoDB Local holds the batch's state; the table saved to SAVE
  http-answer CODE STATUS OUT  an HTTP answer (status file, body file) is CODE as documented
Exit 1 with the reason on stderr on any mismatch.
"""

import argparse
import json
import pathlib
import sys

import boto3


def fail(msg):
    print(f"sam-local-check: {msg}", file=sys.stderr)
    sys.exit(1)


def last_json(path):
    """`sam local invoke` prints the function's answer as the last line of stdout."""
    lines = [l for l in pathlib.Path(path).read_text().splitlines() if l.strip()]
    if not lines:
        fail(f"{path}: no answer")
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        fail(f"{path}: not JSON: {lines[-1][:200]}")


def clients(a):
    env = json.loads(pathlib.Path(a.env).read_text())
    kw = dict(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    sqs = boto3.client("sqs", endpoint_url=a.moto, **kw)
    ddb = boto3.client("dynamodb", endpoint_url=a.dynamodb, **kw)
    return env, sqs, ddb


def drain(sqs, url):
    out = []
    for _ in range(100):
        r = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                AttributeNames=["All"], WaitTimeSeconds=0)
        msgs = r.get("Messages", [])
        if not msgs:
            break
        out += msgs
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)])
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--moto", required=True)
    p.add_argument("--dynamodb", required=True)
    p.add_argument("--env", required=True)
    p.add_argument("verb")
    p.add_argument("args", nargs="*")
    a = p.parse_args()
    v, args = a.verb, a.args

    if v == "ingest-answer":
        out = last_json(args[0])
        if out.get("statusCode") != 200:
            fail(f"status {out.get('statusCode')}, want 200: {out}")
        body = json.loads(out.get("body") or "{}")
        if body.get("status") != "received" or not body.get("id"):
            fail(f"body {body}, want received with an id")
        return
    if v == "no-batch-failures":
        out = last_json(args[0])
        if out != {"batchItemFailures": []}:
            fail(f"answer {out}, want no batch item failures")
        return
    if v == "http-answer":
        want, status, body = int(args[0]), pathlib.Path(args[1]).read_text(), pathlib.Path(args[2]).read_text()
        if status.strip() != str(want):
            fail(f"HTTP {status}, want {want}: {body[:200]}")
        b = json.loads(body)
        if want == 200 and (b.get("status") != "received" or not b.get("id")):
            fail(f"body {b}")
        if want == 401 and b != {"error": "unauthorized"}:
            fail(f"body {b}")
        return

    env, sqs, ddb = clients(a)
    # The file names moto as the containers reach it; here it is a.moto.
    queue = env["IngestFunction"]["QUEUE_URL"].replace(
        env["IngestFunction"]["AWS_ENDPOINT_URL"], a.moto.rstrip("/"), 1)
    if v == "queue-holds":
        want = sorted(f.read_text() for f in sorted(pathlib.Path(args[0]).glob("*.json")))
        msgs = drain(sqs, queue)
        got = sorted(m["Body"] for m in msgs)
        if got != want:
            fail(f"queue holds {len(got)} messages, want the {len(want)} payloads byte for byte "
                 f"(missing {len([w for w in want if w not in got])}, unexpected {len([g for g in got if g not in want])})")
        pathlib.Path(args[1]).write_text(json.dumps(msgs))
        return
    if v == "queue-holds-one":
        # What `curl -d @FILE` (the README's) sends: the file less its CR and LF.
        want = [pathlib.Path(args[0]).read_text().replace("\r", "").replace("\n", "")]
        got = [m["Body"] for m in drain(sqs, queue)]
        if got != want:
            fail(f"queue holds {len(got)} messages, want exactly {args[0]}")
        return
    if v == "queued-as-sqs-event":
        msgs = json.loads(pathlib.Path(args[0]).read_text())
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        records = []
        for m in msgs:
            attrs = {k: {"stringValue": x.get("StringValue"), "stringListValues": [], "binaryListValues": [],
                         "dataType": x["DataType"]} for k, x in m.get("MessageAttributes", {}).items()}
            records.append({"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                            "attributes": m.get("Attributes", {}), "messageAttributes": attrs,
                            "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": arn,
                            "awsRegion": "us-east-1"})
        if not records:
            fail("no queued messages")
        pathlib.Path(args[1]).write_text(json.dumps({"Records": records}))
        return
    if v == "state-after":
        table = env["ConsumerFunction"]["TABLE_NAME"]
        items, kw = [], {}
        while True:
            r = ddb.scan(TableName=table, ConsistentRead=True, **kw)
            items += r["Items"]
            if "LastEvaluatedKey" not in r:
                break
            kw = {"ExclusiveStartKey": r["LastEvaluatedKey"]}
        items.sort(key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
        batch = json.loads(pathlib.Path(args[0]).read_text())["Records"]
        # Each event absorbed once: its compact key in the `ek` (or `ek_old`)
        # set of the items it changed, as many distinct keys as records.
        absorbed = {bytes(k) for i in items for a in ("ek", "ek_old") for k in i.get(a, {}).get("BS", [])}
        if len(absorbed) != len(batch):
            fail(f"{len(absorbed)} absorbed event keys (ek sets) for the batch's {len(batch)} events")
        lead = next((i for i in items if i["pk"]["S"] == "LEAD#jane.doe@acme-corp.com"
                     and i["sk"]["S"] == "CAMPAIGN#123"), None)
        if lead is None or int(lead.get("replies", {}).get("N", "0")) < 1:
            fail(f"no reply counted on LEAD#jane.doe@acme-corp.com / CAMPAIGN#123: {lead}")
        print(f"   table: {len(items)} items, {len(absorbed)} absorbed event keys for {len(batch)} records")
        # Binary sets (the absorbed keys) as hex.
        hexed = lambda o: o.hex() if isinstance(o, (bytes, bytearray)) else str(o)
        pathlib.Path(args[1]).write_text(json.dumps(items, indent=1, sort_keys=True, default=hexed))
        return
    fail(f"unknown verb {v}")


if __name__ == "__main__":
    main()
