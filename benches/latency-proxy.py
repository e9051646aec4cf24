"""A TCP proxy that adds a fixed delay to every byte in each direction, so an S3 server on 127.0.0.1 answers
like one in a distant region: every request waits DELAY_MS on its way there and DELAY_MS on its way back, a
new connection one round trip more; bandwidth is not limited (bytes in flight are forwarded in order, as on
a long fat network).

usage: latency-proxy.py LISTEN_PORT TARGET_PORT DELAY_MS
With PROXY_LOG=FILE, each request line is appended to FILE as it is forwarded, with the seconds since the
proxy started (a trace of what a command asks and when; a line is seen when a read starts with it).
"""
import asyncio
import os
import sys
import time

listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
delay = float(sys.argv[3]) / 1000
CHUNK = 256 * 1024
METHODS = (b"GET ", b"PUT ", b"POST ", b"HEAD ", b"DELETE ")
log = open(os.environ["PROXY_LOG"], "a", buffering=1) if os.environ.get("PROXY_LOG") else None
started = time.monotonic()


async def pipe(reader, writer, trace=False):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def receive():
        try:
            while data := await reader.read(CHUNK):
                queue.put_nowait((loop.time() + delay, data))
        except (ConnectionError, asyncio.CancelledError):
            pass
        queue.put_nowait((loop.time() + delay, b""))

    receiver = asyncio.ensure_future(receive())
    try:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            if trace and data.startswith(METHODS):
                line = data.split(b"\r\n", 1)[0].decode("latin-1")
                log.write(f"{time.monotonic() - started:.3f}\t{line}\n")
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        receiver.cancel()
        writer.close()


async def handle(client_reader, client_writer):
    await asyncio.sleep(2 * delay)  # the handshake's round trip
    try:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, server_writer, log is not None), pipe(server_reader, client_writer))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


asyncio.run(main())
