"""A TCP proxy that caps each connection's upload rate and delays each new connection, so an S3 server on
127.0.0.1 behaves more like one across a network: one connection cannot carry more than RATE bytes/s, the
way a single TCP stream to a distant region is bounded by its window and round-trip time.

usage: throttle-proxy.py LISTEN_PORT TARGET_PORT RATE_MB_PER_S [CONNECT_DELAY_MS]
"""
import asyncio
import sys

listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
rate = float(sys.argv[3]) * 1e6
connect_delay = (float(sys.argv[4]) if len(sys.argv) > 4 else 20.0) / 1000
CHUNK = 64 * 1024


async def pipe(reader, writer, limit):
    loop = asyncio.get_running_loop()
    start, sent = loop.time(), 0
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
            if limit:
                sent += len(data)
                ahead = sent / rate - (loop.time() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
                elif ahead < -0.05:  # idle periods do not bank credit
                    start, sent = loop.time(), 0
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def handle(client_reader, client_writer):
    await asyncio.sleep(connect_delay)
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, server_writer, True), pipe(server_reader, client_writer, False))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


asyncio.run(main())
