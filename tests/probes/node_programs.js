// Node.js programs for tests/test_e2e_runtimes.py: one role per process.
//   node node_programs.js http-server PORT        answers "ok" with Connection: close
//   node node_programs.js http-client PORT N      N requests, a new connection each
//   node node_programs.js udp-server PORT         echoes datagrams until "quit"
//   node node_programs.js udp-client PORT N       N datagrams, 32 outstanding at a time
//   node node_programs.js lookup                  dns.lookup('localhost')
// A client prints one line: what came back and what did not (no rates: timing stays out
// of pass/fail). Every wait is bounded.
'use strict';
const http = require('http'), dgram = require('dgram'), dns = require('dns');
const [, , role, portArg, countArg] = process.argv;
const port = Number(portArg), count = Number(countArg);

function httpServer() {
  const server = http.createServer((req, res) => {
    res.setHeader('Connection', 'close');
    res.end('ok');
  });
  server.listen(port, '127.0.0.1', () => console.log('listening'));
  process.on('SIGTERM', () => server.close(() => { console.log('server closed'); process.exit(0); }));
}

function httpClient() {
  const agent = new http.Agent({ keepAlive: false, maxSockets: 1 });
  let ok = 0, failed = 0;
  const errors = {};
  (function one(i) {
    if (i === count) {
      console.log(JSON.stringify({ ok, failed, errors }));
      return;
    }
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent, timeout: 10000 }, res => {
      let body = '';
      res.on('data', d => { body += d; });
      res.on('end', () => { body === 'ok' ? ok++ : failed++; one(i + 1); });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', e => { failed++; errors[e.code || e.message] = (errors[e.code || e.message] || 0) + 1; one(i + 1); });
  })(0);
}

function udpServer() {
  const s = dgram.createSocket('udp4');
  s.on('message', (m, from) => {
    if (m.toString() === 'quit') { s.close(); return; }
    s.send(m, from.port, from.address);
  });
  s.bind(port, '127.0.0.1', () => console.log('listening'));
}

function udpClient() {
  const window = 32, s = dgram.createSocket('udp4');
  let sent = 0, received = 0, reordered = 0, missing = 0, last = -1, pending = 0, timer = null;
  function finish() {
    s.send('quit', () => {
      s.close();
      console.log(JSON.stringify({ sent, received, reordered, missing }));
    });
  }
  function next() {
    if (sent >= count) return finish();
    pending = Math.min(window, count - sent);
    for (let k = 0; k < pending; k++) s.send(String(sent++));
    timer = setTimeout(() => { missing += pending; next(); }, 2000);
  }
  s.on('message', m => {
    const seq = Number(m.toString());
    if (seq < last) reordered++;
    last = seq;
    received++;
    if (--pending === 0) { clearTimeout(timer); next(); }
  });
  s.connect(port, '127.0.0.1', next);
}

function lookup() {
  dns.lookup('localhost', { all: true, family: 4 }, (err, addresses) => {
    console.log(JSON.stringify({ error: err && err.code, addresses }));
  });
}

({ 'http-server': httpServer, 'http-client': httpClient, 'udp-server': udpServer,
   'udp-client': udpClient, lookup })[role]();
