// sdk_child.mjs -- a client of sdk_test.mjs that is killed with SIGKILL: it starts
// `tasklock mcp` through the SDK, acquires sdk-kill, prints {"pid","token"} on one line, and
// waits to be killed. Environment: TL_MCP_BIN, TL_MCP_STORE.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const transport = new StdioClientTransport({
  command: process.env.TL_MCP_BIN, args: ['-s', process.env.TL_MCP_STORE, 'mcp'],
  env: { ...process.env },
});
const client = new Client({ name: 'doomed', version: '1.0.0' });
await client.connect(transport);
const r = await client.callTool({ name: 'lock_acquire', arguments: { key: 'sdk-kill' } });
if (r.isError) {
  process.stderr.write(`sdk_child: ${r.content[0].text}\n`);
  process.exit(1);
}
process.stdout.write(`${JSON.stringify({ pid: transport.pid, token: r.structuredContent.token })}\n`);
setInterval(() => {}, 1000); // until SIGKILL
