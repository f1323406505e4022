// The Socket.IO-on-Node peer of benchmarks/bench_fanout.py: nothing stored.
//
//     node benchmarks/node/server.js PORT
//
// Subscribers connect with /socket.io/?EIO=4&transport=websocket&room=<name> and are
// put in that room. POST /publish/<name> emits the JSON body to the room;
// POST /inproc/start ({"rooms": [...], "events": n, "pad": n, "credit_port": p}) starts
// one in-process loop per room, paced by the load generator's UDP credits (the same
// datagrams as benchmarks/fanout/workload.py: "C" + uint32 LE pairs (room, allowed), or "S").
"use strict";

const http = require("node:http");
const dgram = require("node:dgram");
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
const EVENT = "ev";

function nowUs() {
  return Number(process.hrtime.bigint() / 1000n);
}

class CreditBoard {
  constructor() {
    this.allowed = new Map();
    this.waiters = new Map();
    this.stopped = false;
  }

  listen(creditPort) {
    const socket = dgram.createSocket("udp4");
    socket.on("message", (data) => this.onMessage(data));
    return new Promise((resolve) => socket.bind(creditPort, "127.0.0.1", resolve));
  }

  onMessage(data) {
    if (data[0] === 0x53) { // "S"
      this.stopped = true;
      for (const room of [...this.waiters.keys()]) this.wake(room);
      return;
    }
    if (data[0] !== 0x43) return; // "C"
    for (let off = 1; off + 8 <= data.length; off += 8) {
      const room = data.readUInt32LE(off);
      const value = data.readUInt32LE(off + 4);
      if (value > (this.allowed.get(room) || 0)) {
        this.allowed.set(room, value);
        this.wake(room);
      }
    }
  }

  wake(room) {
    const resolve = this.waiters.get(room);
    if (resolve) {
      this.waiters.delete(room);
      resolve();
    }
  }

  async acquire(room, index) {
    while (!this.stopped && index >= (this.allowed.get(room) || 0)) {
      await new Promise((resolve) => this.waiters.set(room, resolve));
    }
    return !this.stopped;
  }
}

function yieldToLoop() {
  return new Promise((resolve) => setImmediate(resolve));
}

async function roomLoop(io, board, index, name, events, pad) {
  for (let k = 0; k < events && (await board.acquire(index, k)); k++) {
    io.to(name).emit(EVENT, { i: k, t: nowUs(), pad });
    await yieldToLoop();
  }
}

async function startLoops(io, config) {
  const board = new CreditBoard();
  await board.listen(config.credit_port);
  const pad = "x".repeat(config.pad);
  config.rooms.forEach((name, index) => {
    roomLoop(io, board, index, name, config.events, pad);
  });
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function answer(res, status) {
  res.writeHead(status, { "content-length": "0" });
  res.end();
}

const server = http.createServer(async (req, res) => {
  if (req.method !== "POST") return answer(res, 404);
  const body = await readBody(req);
  if (req.url.startsWith("/publish/")) {
    io.to(req.url.slice(9)).emit(EVENT, JSON.parse(body));
    return answer(res, 202);
  }
  if (req.url === "/inproc/start") {
    await startLoops(io, JSON.parse(body));
    return answer(res, 202);
  }
  return answer(res, 404);
});
server.keepAliveTimeout = 120000;

const io = new Server(server, { serveClient: false, transports: ["websocket"] });
io.on("connection", (socket) => {
  socket.join(String(socket.handshake.query.room || ""));
});

server.listen(port, "127.0.0.1", () => console.log("ready"));
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
