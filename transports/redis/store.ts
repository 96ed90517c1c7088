/**
 * A `SessionStore` in Redis, shared by every process of one agent: sessions,
 * an atomic send allocator (no key and nonce pair is ever used twice, however
 * many processes send), replay windows, one-shot dedup (`SET NX PX`) and
 * delivery receipts. All of one agent's keys carry its id as a hash tag.
 *
 * Redis never sees a key: sessions, and the chain and epoch keys of the send
 * allocator, are sealed under the agent's state key (`StateSealer`, derived
 * from its identity) before they are written, and opened (authenticated)
 * when read. Whoever reads this Redis learns no key and can forge nothing;
 * a record altered or moved in Redis is a `DecryptError`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { ConfigError, SessionError, TransportError } from "../../crypto/errors.ts";
import { checkId } from "../../spore/limits.ts";
import type { ReplayVerdict } from "../../spore/replay.ts";
import { epochKey, nextChain } from "../../spore/schedule.ts";
import type { StateSealer } from "../../spore/state_seal.ts";
import {
  DEFAULT_SESSION_POLICY,
  type ReceiptState,
  type SessionPolicy,
  type SessionState,
  type SessionStore,
} from "../../spore/session.ts";
import { loose, type RedisClient } from "./connection.ts";

const ALLOCATE = `
local f = redis.call('HMGET', KEYS[1], 'e', 'c', 't')
if not f[1] then return {'missing'} end
local e = tonumber(f[1]); local c = tonumber(f[2]); local t = tonumber(f[3])
if c >= tonumber(ARGV[1]) or tonumber(ARGV[3]) - t >= tonumber(ARGV[2]) then
  return {'rotate', tostring(e), redis.call('HGET', KEYS[1], 'chain')}
end
redis.call('HINCRBY', KEYS[1], 'c', 1)
return {'ok', tostring(e), tostring(c), redis.call('HGET', KEYS[1], 'key')}`;

const ROTATE = `
local e = tonumber(redis.call('HGET', KEYS[1], 'e'))
if e == tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'e', e + 1, 'c', 0, 't', ARGV[4], 'chain', ARGV[2], 'key', ARGV[3])
end
return 1`;

const WINDOW = `
local c = tonumber(ARGV[1]); local w = tonumber(ARGV[2])
local top = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local h = -1
if top[2] then h = tonumber(top[2]) end
if c <= h - w then return 'stale' end
if redis.call('ZADD', KEYS[1], 'NX', c, tostring(c)) == 0 then return 'duplicate' end
if c > h then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', c - w) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 'fresh'`;

const ONCE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 'duplicate' end
local created = tonumber(ARGV[2])
local floor = tonumber(redis.call('GET', KEYS[3]) or '-1')
if created <= floor then return 'stale' end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('ZADD', KEYS[2], created, ARGV[5])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if over > 0 then
  local gone = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #gone, 2 do
    redis.call('DEL', ARGV[4] .. gone[i])
    if tonumber(gone[i + 1]) > floor then floor = tonumber(gone[i + 1]) end
  end
  local keep = math.max(redis.call('PTTL', KEYS[3]), tonumber(ARGV[1]))
  redis.call('SET', KEYS[3], tostring(floor), 'PX', keep)
end
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
return 'fresh'`;

const CLAIM = `
local v = redis.call('GET', KEYS[1])
if v == 'done' then return 'done' end
if v then return 'busy' end
redis.call('SET', KEYS[1], 'busy', 'PX', ARGV[1])
return 'claimed'`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == 'busy' then redis.call('DEL', KEYS[1]) end
return 1`;

const buf = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
const str = (v: unknown): string => (v instanceof Uint8Array ? new TextDecoder().decode(v) : String(v));

/** Options of a {@linkcode RedisSessionStore}. */
export interface RedisSessionStoreOptions {
  /** Key prefix. Default `"spores"`. */
  prefix?: string;
  /** Replay window per (session, epoch). Default 4,096. */
  replayWindow?: number;
  /** How long replay windows are kept after their last use, ms. Default 7 days. */
  windowTtlMs?: number;
  /** How long a process reuses a session it read before reading it again, ms. Default 5,000. */
  cacheMs?: number;
  /** Most one-shot replay entries kept per sender (then its low-water mark rises). Default 10,000. */
  oncePerSender?: number;
}

/**
 * Session and replay state of one agent in Redis.
 *
 * @example
 * ```ts ignore
 * import { Agent } from "@spores/spores";
 * import { createTransport, RedisSessionStore, RedisTransport } from "@spores/spores/redis";
 * const transport = await createTransport("redis://127.0.0.1:6379") as RedisTransport;
 * const store = new RedisSessionStore(transport.client, "worker");
 * const agent = await Agent.start({ id: "worker", transport, store });
 * ```
 */
export class RedisSessionStore implements SessionStore {
  readonly #c: RedisClient;
  readonly #k: string;
  readonly #window: number;
  readonly #windowTtl: number;
  readonly #cacheMs: number;
  readonly #oncePerSender: number;
  readonly #cache = new Map<string, { state: SessionState; at: number }>();
  /** The last send position this process allocated per session: a store rolled back is refused. */
  readonly #allocated = new Map<string, { epoch: number; counter: number }>();
  #sealer: StateSealer | undefined;

  /**
   * The state of `agent`, in the Redis that `client` reaches.
   *
   * @param client A connected client.
   * @param agent The agent whose state this is.
   * @param options Prefix, replay window and cache settings.
   */
  constructor(client: RedisClient, agent: string, options: RedisSessionStoreOptions = {}) {
    this.#c = client;
    this.#k = `${options.prefix ?? "spores"}:state:{${checkId(agent, "agent")}}`;
    this.#window = options.replayWindow ?? DEFAULT_SESSION_POLICY.replayWindow;
    this.#windowTtl = options.windowTtlMs ?? 7 * 86_400_000;
    this.#cacheMs = options.cacheMs ?? 5000;
    this.#oncePerSender = options.oncePerSender ?? 10_000;
  }

  /** Receives the agent's state sealer (the engine calls this once, before any other method). */
  attach(sealer: StateSealer): void {
    if (this.#sealer && this.#sealer.agent !== sealer.agent) {
      throw new ConfigError("this Redis session store already serves another agent");
    }
    this.#sealer = sealer;
  }

  get #s(): StateSealer {
    if (!this.#sealer) {
      throw new ConfigError("RedisSessionStore has no state key: use it through an Agent or SporeEngine");
    }
    return this.#sealer;
  }

  async #run<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (cause) {
      throw new TransportError(`Redis session store: ${what} failed`, { cause });
    }
  }

  /** The session `id`. */
  async get(id: string): Promise<SessionState | undefined> {
    const sealer = this.#s;
    const cached = this.#cache.get(id);
    if (cached && Date.now() - cached.at < this.#cacheMs) return cached.state;
    const raw = await this.#run("read", () => this.#c.hgetBuffer(`${this.#k}:sessions`, id));
    if (!raw) return undefined;
    const stored = sealer.openSession(new Uint8Array(raw), id);
    // Receive state is each process's own once read (it ratchets deterministically).
    const state = cached ? { ...stored, recv: cached.state.recv } : stored;
    this.#cache.set(id, { state, at: Date.now() });
    return state;
  }

  /** Stores a session; its send position is created once and then only moved by `allocateSend`. */
  async put(state: SessionState): Promise<void> {
    const send = `${this.#k}:send:${state.id}`;
    const sealer = this.#s;
    const sealed = sealer.sealSession(state);
    await this.#run("write", async () => {
      await this.#c.hset(`${this.#k}:sessions`, state.id, buf(sealed));
      if (await this.#c.exists(send) === 0) {
        await this.#c.eval(
          "if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('HSET', KEYS[1], 'e', ARGV[1], 'c', ARGV[2], 't', ARGV[3], 'chain', ARGV[4], 'key', ARGV[5]) end return 1",
          1,
          send,
          String(state.send.epoch),
          String(state.send.counter),
          String(state.send.startedAt),
          buf(sealer.seal(state.send.chain, `send:${state.id}:${state.send.epoch}:chain`)),
          buf(sealer.seal(state.send.key, `send:${state.id}:${state.send.epoch}:key`)),
        );
      }
    });
    this.#cache.set(state.id, { state, at: Date.now() });
  }

  /** Removes a session. */
  async delete(id: string): Promise<void> {
    await this.#run("delete", async () => {
      await this.#c.hdel(`${this.#k}:sessions`, id);
      await this.#c.del(`${this.#k}:send:${id}`);
    });
    this.#cache.delete(id);
    this.#allocated.delete(id);
  }

  /** The sending session for `peer`. */
  async current(peer: string): Promise<SessionState | undefined> {
    const id = await this.#run("read", () => this.#c.hget(`${this.#k}:current`, peer));
    return id ? await this.get(id) : undefined;
  }

  /** Sets the sending session for `peer`. */
  async setCurrent(peer: string, id: string): Promise<void> {
    await this.#run("write", () => this.#c.hset(`${this.#k}:current`, peer, id));
  }

  /** Allocates a send position atomically in Redis, rotating the epoch when due. */
  async allocateSend(
    state: SessionState,
    policy: SessionPolicy,
    now: number,
  ): Promise<{ epoch: number; counter: number; key: Uint8Array; rotated: boolean }> {
    const send = `${this.#k}:send:${state.id}`;
    const sealer = this.#s;
    let rotated = false;
    for (let attempt = 0; attempt < 5; attempt++) {
      const r = await this.#run(
        "allocate",
        () =>
          loose(this.#c).evalBuffer(ALLOCATE, 1, send, policy.rotateAfterMessages, policy.rotateAfterMs, now),
      ) as unknown[];
      const status = str(r[0]);
      if (status === "ok") {
        const epoch = Number(str(r[1]));
        const counter = Number(str(r[2]));
        const last = this.#allocated.get(state.id);
        if (last && (epoch < last.epoch || (epoch === last.epoch && counter <= last.counter))) {
          throw new SessionError("session store rolled back: refusing to use a nonce twice");
        }
        const key = sealer.open(new Uint8Array(r[3] as Uint8Array), `send:${state.id}:${epoch}:key`);
        this.#allocated.set(state.id, { epoch, counter });
        state.send.epoch = epoch;
        state.send.counter = counter + 1;
        return { epoch, counter, key, rotated };
      }
      if (status !== "rotate") throw new TransportError("Redis session store: session has no send state");
      const e = Number(str(r[1]));
      const chain = sealer.open(new Uint8Array(r[2] as Uint8Array), `send:${state.id}:${e}:chain`);
      const key = epochKey(chain);
      const next = nextChain(chain);
      const sealedNext = sealer.seal(next, `send:${state.id}:${e + 1}:chain`);
      const sealedKey = sealer.seal(key, `send:${state.id}:${e + 1}:key`);
      chain.fill(0);
      next.fill(0);
      key.fill(0);
      await this.#run(
        "rotate",
        () => this.#c.eval(ROTATE, 1, send, String(e), buf(sealedNext), buf(sealedKey), String(now)),
      );
      rotated = true;
    }
    throw new TransportError("Redis session store: could not allocate a send position");
  }

  /** Records a received counter atomically. */
  async acceptCounter(id: string, epoch: number, counter: number): Promise<ReplayVerdict> {
    const r = await this.#run(
      "replay check",
      () => this.#c.eval(WINDOW, 1, `${this.#k}:win:${id}/${epoch}`, counter, this.#window, this.#windowTtl),
    );
    return str(r) as ReplayVerdict;
  }

  /**
   * Records a one-shot key (`SET NX PX`), under its sender's quota: past
   * `oncePerSender` entries the sender's oldest is given up and its low-water
   * mark rises to that entry's creation time (one atomic script).
   */
  async acceptOnce(
    key: string,
    until: number,
    origin?: { sender: string; createdAt: number },
  ): Promise<ReplayVerdict> {
    const ttl = Math.max(1, until - Date.now());
    if (!origin) {
      const r = await this.#run("dedup", () => this.#c.set(`${this.#k}:once:${key}`, "1", "PX", ttl, "NX"));
      return r === "OK" ? "fresh" : "duplicate";
    }
    const r = await this.#run("dedup", () =>
      this.#c.eval(
        ONCE,
        3,
        `${this.#k}:once:${key}`,
        `${this.#k}:oncez:${origin.sender}`,
        `${this.#k}:oncef:${origin.sender}`,
        ttl,
        origin.createdAt,
        this.#oncePerSender,
        `${this.#k}:once:`,
        key,
      ));
    return str(r) as ReplayVerdict;
  }

  /** Claims a message's handling. */
  async claimReceipt(key: string, leaseMs: number): Promise<ReceiptState> {
    const r = await this.#run("claim", () => this.#c.eval(CLAIM, 1, `${this.#k}:receipt:${key}`, leaseMs));
    return str(r) as ReceiptState;
  }

  /** Marks a message handled. */
  async completeReceipt(key: string, until: number): Promise<void> {
    const ttl = Math.max(1, until - Date.now());
    await this.#run("complete", () => this.#c.set(`${this.#k}:receipt:${key}`, "done", "PX", ttl));
  }

  /** Releases a claim. */
  async releaseReceipt(key: string): Promise<void> {
    await this.#run("release", () => this.#c.eval(RELEASE, 1, `${this.#k}:receipt:${key}`));
  }
}
