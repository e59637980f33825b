#!/usr/bin/env node
// Replays gen_events.py messages through the official Segment Node.js SDK (@segment/analytics-node).
//
//   node node_send.mjs HOST WRITE_KEY < events.ndjson
//
// Prints one JSON line: how many calls were made and how many the SDK reported as failed.
import { createInterface } from 'node:readline'
import { Analytics } from '@segment/analytics-node'

const [host, writeKey] = process.argv.slice(2)
const analytics = new Analytics({ writeKey, host, maxRetries: 3, flushAt: 15 })
const failures = []
analytics.on('error', (error) => failures.push(error.code))

let calls = 0
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue
  const m = JSON.parse(line)
  const common = {
    userId: m.userId ?? undefined,
    anonymousId: m.anonymousId ?? undefined,
    context: m.context,
    timestamp: m.timestamp,
    messageId: m.messageId,
  }
  switch (m.type) {
    case 'track': analytics.track({ ...common, event: m.event, properties: m.properties }); break
    case 'identify': analytics.identify({ ...common, traits: m.traits }); break
    case 'group': analytics.group({ ...common, groupId: m.groupId, traits: m.traits }); break
    case 'page': analytics.page({ ...common, name: m.name, properties: m.properties }); break
    default: continue
  }
  calls += 1
}
await analytics.closeAndFlush({ timeout: 30000 })
console.log(JSON.stringify({ calls, failed_batches: failures.length }))
