/**
 * `GET /metrics`: the bridge's counters and states in the Prometheus text format.
 *
 * @module
 */
import type { BridgeManager } from "./core/manager.ts";

/** Renders the metrics of `manager`. */
export async function renderMetrics(manager: BridgeManager): Promise<string> {
  const stats = manager.stats();
  const lines: string[] = [];
  const metric = (
    name: string,
    type: "counter" | "gauge",
    help: string,
    samples: Array<[string, number]>,
  ) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  metric("mmxmpp_messages_received_total", "counter", "Messages received from either network.", [
    ["", stats.received],
  ]);
  metric("mmxmpp_messages_delivered_total", "counter", "Messages delivered to the other network.", [
    ["", stats.delivered],
  ]);
  metric("mmxmpp_delivery_retries_total", "counter", "Delivery attempts that failed and were retried.", [
    ["", stats.retried],
  ]);
  metric("mmxmpp_delivery_failures_total", "counter", "Messages given up on after a permanent error.", [
    ["", stats.failed],
  ]);
  metric("mmxmpp_messages_dropped_total", "counter", "Messages not bridged, by reason.", [
    ['{reason="echo"}', stats.echoesDropped],
    ['{reason="duplicate"}', stats.duplicatesDropped],
    ['{reason="unmapped"}', stats.unmapped],
    ['{reason="unhandled"}', stats.unhandled],
  ]);
  metric(
    "mmxmpp_deliveries_skipped_total",
    "counter",
    "Deliveries of events the target could not take, by reason.",
    [
      ['{reason="unsupported"}', stats.unsupported],
      ['{reason="unresolved"}', stats.unresolved],
      ['{reason="not_author"}', stats.notAuthor],
    ],
  );
  metric("mmxmpp_queue_depth", "gauge", "Messages waiting for delivery.", [["", stats.queued]]);
  metric("mmxmpp_mappings", "gauge", "Mapped channel pairs.", [["", (await manager.listMappings()).length]]);
  metric(
    "mmxmpp_connected",
    "gauge",
    "1 while the connection to a network is up.",
    manager.health().map((h) => [`{network="${h.network}"}`, h.connected ? 1 : 0]),
  );
  return lines.join("\n") + "\n";
}
