"""The real services the store and cluster tests stand on answer for real."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis


async def test_postgres_answers_a_query(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        version = await conn.fetchval("SHOW server_version_num")
        assert int(version) >= 150000
        assert await conn.fetchval("SELECT 40 + 2") == 42
    finally:
        await conn.close()


async def test_redis_round_trips_a_value(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        assert await client.ping()
        await client.set("threadwire:test:ping", "pong", ex=10)
        assert await client.get("threadwire:test:ping") == b"pong"
    finally:
        await client.aclose()
