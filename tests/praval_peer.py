#!/usr/bin/env python3
"""An independent Praval peer for the interoperability tests.

It follows Praval 0.8's SecureSpore v1.0 wire format with Debian's
python3-nacl and python3-msgpack (and python3-pika for AMQP): a msgpack map
of 13 fields (14 with trace_context), knowledge as json.dumps(...,
ensure_ascii=False) in a PyNaCl Box, an Ed25519 signature over
ciphertext + nonce (+ the canonical trace-context JSON when present).

Commands (argv[1]):
  vectors              print the byte vectors (JSON) on stdout
  serve                read JSON requests, one per line, on stdin; answer one JSON line each
  amqp URL NAME PEER   an agent on RabbitMQ: exchange praval.spores, queue bound to
                       agent.NAME.* ; reads its keys and the peer's from stdin (one JSON line),
                       prints "ready", answers each request spore with a response spore,
                       prints one JSON line per spore received, and stops after a "stop" spore.
  mqtt HOST PORT NAME PEER
                       the same on MQTT (python3-paho-mqtt): subscribes to praval/spores/agent/NAME/+ and
                       publishes to praval/spores/agent/PEER/TYPE, QoS 1.
"""

import base64
import json
import sys
import uuid
import time

import msgpack
import nacl.public
import nacl.signing
import nacl.exceptions

TYPES = ("knowledge", "request", "response", "broadcast", "notification")


def b64(b):
    return base64.b64encode(bytes(b)).decode("ascii")


class Keys:
    def __init__(self, name, signing_seed, box_secret):
        self.name = name
        self.signing = nacl.signing.SigningKey(signing_seed)
        self.box = nacl.public.PrivateKey(box_secret)

    @classmethod
    def from_export(cls, e):
        return cls(e["agent_name"], base64.b64decode(e["signing_key"]), base64.b64decode(e["box_key"]))

    def export(self):
        return {
            "agent_name": self.name,
            "signing_key": b64(bytes(self.signing)),
            "box_key": b64(bytes(self.box)),
            "verify_key": b64(bytes(self.signing.verify_key)),
            "public_key": b64(bytes(self.box.public_key)),
        }

    def public(self):
        return {
            "agent_name": self.name,
            "verify_key": bytes(self.signing.verify_key),
            "public_key": bytes(self.box.public_key),
        }


def public_from_json(p):
    return {
        "agent_name": p["agent_name"],
        "verify_key": base64.b64decode(p["verify_key"]),
        "public_key": base64.b64decode(p["public_key"]),
    }


def trace_bytes(carrier):
    return json.dumps(carrier, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def pack(fields):
    data = {
        "id": fields["id"],
        "spore_type": fields["spore_type"],
        "from_agent": fields["from_agent"],
        "to_agent": fields["to_agent"],
        "created_at": float(fields["created_at"]),
        "expires_at": None if fields["expires_at"] is None else float(fields["expires_at"]),
        "priority": fields["priority"],
        "encrypted_knowledge": fields["encrypted_knowledge"],
        "knowledge_signature": fields["knowledge_signature"],
        "sender_public_key": fields["sender_public_key"],
        "nonce": fields["nonce"],
        "encrypted_references": None,
        "version": "1.0",
    }
    if fields.get("trace_context") is not None:
        data["trace_context"] = dict(fields["trace_context"])
    return msgpack.packb(data, use_bin_type=True)


def seal(sender, recipient_public, knowledge, spore_type="knowledge", priority=5,
         created_at=None, expires_at="default", spore_id=None, nonce=None, trace_context=None):
    created_at = time.time() if created_at is None else created_at
    if expires_at == "default":
        expires_at = created_at + 300
    plaintext = json.dumps(knowledge, ensure_ascii=False).encode("utf-8")
    box = nacl.public.Box(sender.box, nacl.public.PublicKey(recipient_public["public_key"]))
    enc = box.encrypt(plaintext, nonce) if nonce is not None else box.encrypt(plaintext)
    ad = trace_bytes(trace_context) if trace_context is not None else b""
    sig = sender.signing.sign(enc.ciphertext + enc.nonce + ad).signature
    return pack({
        "id": spore_id or str(uuid.uuid4()),
        "spore_type": spore_type,
        "from_agent": sender.name,
        "to_agent": recipient_public["agent_name"],
        "created_at": created_at,
        "expires_at": expires_at,
        "priority": priority,
        "encrypted_knowledge": enc.ciphertext,
        "knowledge_signature": sig,
        "sender_public_key": bytes(sender.box.public_key),
        "nonce": enc.nonce,
        "trace_context": trace_context,
    })


def broadcast(sender, knowledge, spore_type="broadcast", created_at=None, spore_id=None):
    # Praval's broadcasts: plaintext JSON, no nonce, no signature.
    created_at = time.time() if created_at is None else created_at
    return pack({
        "id": spore_id or str(uuid.uuid4()),
        "spore_type": spore_type,
        "from_agent": sender.name,
        "to_agent": None,
        "created_at": created_at,
        "expires_at": None,
        "priority": 5,
        "encrypted_knowledge": json.dumps(knowledge).encode("utf-8"),
        "knowledge_signature": b"",
        "sender_public_key": bytes(sender.box.public_key),
        "nonce": b"",
        "trace_context": None,
    })


def open_spore(me, sender_public, data):
    """Opens as Praval does, then re-packs the fields to check the bytes round-trip."""
    u = msgpack.unpackb(data, raw=False, strict_map_key=False)
    assert u["version"] == "1.0", "version"
    assert u["spore_type"] in TYPES, "spore_type"
    ad = trace_bytes(u["trace_context"]) if "trace_context" in u else b""
    nacl.signing.VerifyKey(sender_public["verify_key"]).verify(
        u["encrypted_knowledge"] + u["nonce"] + ad, u["knowledge_signature"])
    box = nacl.public.Box(me.box, nacl.public.PublicKey(sender_public["public_key"]))
    knowledge = json.loads(box.decrypt(u["encrypted_knowledge"], u["nonce"]).decode("utf-8"))
    repacked = pack(dict(u))
    return u, knowledge, repacked == data


def fixed_keys(name, n):
    return Keys(name, bytes([n]) * 32, bytes([n + 100]) * 32)


def vectors():
    alice = fixed_keys("praval-alice", 1)
    bob = fixed_keys("spores-bob", 2)
    cases = [
        {
            "name": "knowledge, no trace context",
            "knowledge": {"topic": "tides", "depth": 12, "ok": True, "none": None},
            "spore_type": "knowledge", "priority": 5,
            "created_at": 1767225600.25, "expires_at": 1767225900.25,
            "id": "6f1c1a52-8d0e-4f5e-9c1b-7a8e4f2d9b10", "nonce": bytes(range(24)), "trace_context": None,
        },
        {
            "name": "request with a signed trace context",
            "knowledge": {"question": "what is the tide at noon?", "ids": [1, 2, 3]},
            "spore_type": "request", "priority": 8,
            "created_at": 1767225601.5, "expires_at": None,
            "id": "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d", "nonce": bytes(range(100, 124)),
            "trace_context": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                              "tracestate": "spores=1", "baggage": "k=v"},
        },
        {
            "name": "unicode, escapes, floats",
            "knowledge": {"text": "h\u00e9llo \"q\" \\ \n\t \u2028 \U0001F30A", "neg": -12, "f": 2.5,
                          "small": 1.5e-05, "tiny": -3e-07, "nested": {"list": [True, False, None, "x"]},
                          "\u00e9cole": "\u65e5\u672c"},
            "spore_type": "notification", "priority": 1,
            "created_at": 1767225602.0, "expires_at": 1767229202.0,
            "id": "5", "nonce": bytes([7]) * 24, "trace_context": {},
        },
        {
            "name": "empty knowledge, long id",
            "knowledge": {},
            "spore_type": "response", "priority": 10,
            "created_at": 1767225603.125, "expires_at": 1767225663.125,
            "id": "r" * 40, "nonce": bytes([255]) * 24, "trace_context": None,
        },
    ]
    out = []
    for c in cases:
        data = seal(alice, bob.public(), c["knowledge"], c["spore_type"], c["priority"], c["created_at"],
                    c["expires_at"], c["id"], c["nonce"], c["trace_context"])
        out.append({
            "name": c["name"],
            "sporeType": c["spore_type"], "priority": c["priority"],
            "createdAt": c["created_at"], "expiresAt": c["expires_at"], "id": c["id"],
            "nonce": c["nonce"].hex(), "traceContext": c["trace_context"],
            "knowledge": c["knowledge"],
            "knowledgeJson": json.dumps(c["knowledge"], ensure_ascii=False),
            "spore": data.hex(),
        })
    bcast = broadcast(alice, {"alert": "storm"}, created_at=1767225604.0,
                      spore_id="0b7e1f9a-3c2d-4e5f-8a9b-1c2d3e4f5a6b")
    return {
        "description": "Praval SecureSpore v1.0 byte vectors, made by tests/praval_peer.py "
                       "(PyNaCl Box + Ed25519, msgpack use_bin_type=True)",
        "sender": alice.export(),
        "recipient": bob.export(),
        "spores": out,
        "broadcast": bcast.hex(),
    }


def serve():
    for line in sys.stdin:
        req = json.loads(line)
        try:
            me = Keys.from_export(req["keys"])
            if req["op"] == "seal":
                peer = public_from_json(req["peer"])
                nonce = bytes.fromhex(req["nonce"]) if req.get("nonce") else None
                data = seal(me, peer, req["knowledge"], req.get("spore_type", "knowledge"),
                            req.get("priority", 5), req.get("created_at"), req.get("expires_at", "default"),
                            req.get("id"), nonce, req.get("trace_context"))
                res = {"spore": data.hex()}
            elif req["op"] == "open":
                peer = public_from_json(req["peer"])
                u, knowledge, same = open_spore(me, peer, bytes.fromhex(req["spore"]))
                res = {"knowledge": knowledge, "repackedIdentical": same, "id": u["id"],
                       "spore_type": u["spore_type"], "priority": u["priority"],
                       "created_at": u["created_at"], "expires_at": u["expires_at"]}
            elif req["op"] == "broadcast":
                res = {"spore": broadcast(me, req["knowledge"]).hex()}
            else:
                res = {"error": "unknown op"}
        except Exception as e:  # report, keep serving
            res = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(res), flush=True)


def amqp(url, name, peer_name):
    import pika
    conf = json.loads(sys.stdin.readline())
    me = Keys.from_export(conf["keys"])
    peer = public_from_json(conf["peer"])
    exchange = conf.get("exchange", "praval.spores")
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.exchange_declare(exchange, exchange_type="topic", durable=True)
    q = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
    ch.queue_bind(q, exchange, routing_key=f"agent.{name}.*")

    def publish(data, spore_type, priority=5, ttl=None):
        props = pika.BasicProperties(delivery_mode=2, priority=priority, message_id=str(uuid.uuid4()),
                                     timestamp=int(time.time()),
                                     expiration=str(ttl * 1000) if ttl else None)
        ch.basic_publish(exchange, f"agent.{peer_name}.{spore_type}", data, props)

    def on_message(channel, method, props, body):
        try:
            u, knowledge, same = open_spore(me, peer, body)
            print(json.dumps({"received": knowledge, "spore_type": u["spore_type"], "id": u["id"],
                              "routing_key": method.routing_key, "repackedIdentical": same}), flush=True)
            if u["spore_type"] == "request":
                reply = seal(me, peer, {"echo": knowledge, "reply_to": u["id"]}, "response", 7)
                publish(reply, "response", 7, 60)
            if knowledge.get("stop"):
                channel.basic_ack(method.delivery_tag)
                channel.stop_consuming()
                return
        except Exception as e:
            print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        channel.basic_ack(method.delivery_tag)

    ch.basic_consume(q, on_message)
    # Spores sent first by this peer (a request to answer), then the tampered and replayed copies.
    for item in conf.get("send", []):
        data = seal(me, peer, item["knowledge"], item.get("spore_type", "knowledge"), item.get("priority", 5))
        publish(data, item.get("spore_type", "knowledge"))
        for _ in range(item.get("replays", 0)):
            publish(data, item.get("spore_type", "knowledge"))
        if item.get("tampered"):
            bad = bytearray(data)
            bad[-40] ^= 1  # inside the nonce / signature area of the map
            publish(bytes(bad), item.get("spore_type", "knowledge"))
    if conf.get("broadcast"):
        ch.basic_publish(exchange, "broadcast.broadcast", broadcast(me, conf["broadcast"]))
    print("ready", flush=True)
    ch.start_consuming()
    conn.close()


def mqtt(host, port, name, peer_name):
    import paho.mqtt.client as paho
    conf = json.loads(sys.stdin.readline())
    me = Keys.from_export(conf["keys"])
    peer = public_from_json(conf["peer"])
    prefix = conf.get("prefix", "praval/spores")
    client = paho.Client(client_id=f"praval-peer-{name}", clean_session=True)
    subscribed = []
    done = []

    def publish(data, spore_type):
        client.publish(f"{prefix}/agent/{peer_name}/{spore_type}", data, qos=1).wait_for_publish()

    def on_subscribe(c, userdata, mid, granted):
        subscribed.append(mid)

    def on_message(c, userdata, msg):
        try:
            u, knowledge, same = open_spore(me, peer, msg.payload)
            print(json.dumps({"received": knowledge, "spore_type": u["spore_type"], "id": u["id"],
                              "topic": msg.topic, "repackedIdentical": same}), flush=True)
            if u["spore_type"] == "request":
                reply = seal(me, peer, {"echo": knowledge, "reply_to": u["id"]}, "response", 7)
                c.publish(f"{prefix}/agent/{peer_name}/response", reply, qos=1)
            if knowledge.get("stop"):
                done.append(True)
        except Exception as e:
            print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)

    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, int(port))
    client.loop_start()
    client.subscribe(f"{prefix}/agent/{name}/+", qos=1)
    while not subscribed:
        time.sleep(0.01)
    for item in conf.get("send", []):
        data = seal(me, peer, item["knowledge"], item.get("spore_type", "knowledge"), item.get("priority", 5))
        publish(data, item.get("spore_type", "knowledge"))
        for _ in range(item.get("replays", 0)):
            publish(data, item.get("spore_type", "knowledge"))
    print("ready", flush=True)
    while not done:
        time.sleep(0.02)
    client.loop_stop()
    client.disconnect()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "vectors":
        json.dump(vectors(), sys.stdout, indent=2, ensure_ascii=False)
        print()
    elif cmd == "serve":
        serve()
    elif cmd == "amqp":
        amqp(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "mqtt":
        mqtt(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        sys.exit("unknown command")
