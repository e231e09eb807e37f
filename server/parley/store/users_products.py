"""Users and products: Parley's copy of what the marketplace owns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import asyncpg

from parley.errors import Forbidden, NotFound, NotReserved, UserErased
from parley.models import Product, User, UserSettings
from parley.store._sql import PRODUCT_COLUMNS, connection, shown_total
from parley.validation import check_id, check_name, check_product, check_url

if TYPE_CHECKING:
    from parley.store._sql import Database


async def upsert_user(
    db: Database, user_id: int, display_name: str = "", avatar_url: str | None = None
) -> User:
    """Create or update a user as the marketplace knows them."""
    check_id(user_id, "user_id")
    check_name(display_name, "display_name")
    check_url(avatar_url, "avatar_url")
    row = await db.fetchrow(
        """
        INSERT INTO users (id, display_name, avatar_url) VALUES ($1, $2, $3)
        ON CONFLICT (id) DO UPDATE
            SET display_name = EXCLUDED.display_name, avatar_url = EXCLUDED.avatar_url
            WHERE users.erased_at IS NULL
        RETURNING id, display_name, avatar_url
        """,
        user_id,
        display_name,
        avatar_url,
    )
    if row is None:  # the conflict's update matched nothing: an erased user
        raise UserErased(f"user {user_id} was erased")
    return User(**row)


# The hello: the user and their badge in one read (no commit), for every connect.
_USER_AND_BADGE: Final = f"""
    SELECT u.id, u.display_name, u.avatar_url, u.show_presence, u.erased_at,
           {shown_total("u.id")} AS unread_total, coalesce(b.version, 0) AS unread_version
      FROM users u LEFT JOIN badges b ON b.user_id = u.id
     WHERE u.id = $1
"""


async def ensure_user(db: Database, user_id: int) -> tuple[User, int, int, UserSettings]:
    """The user, their unread total, its badge version and their settings; a user the
    marketplace has not synced yet is created with an empty profile (a valid token proves
    the marketplace knows them).

    One read for a known user, so a reconnect storm costs no commits.
    """
    check_id(user_id, "user_id")
    row = await db.fetchrow(_USER_AND_BADGE, user_id)
    if row is None:
        await db.execute("INSERT INTO users (id) VALUES ($1) ON CONFLICT (id) DO NOTHING", user_id)
        row = await db.fetchrow(_USER_AND_BADGE, user_id)
        assert row is not None
    if row["erased_at"] is not None:
        raise UserErased(f"user {user_id} was erased")
    user = User(id=row["id"], display_name=row["display_name"], avatar_url=row["avatar_url"])
    settings = UserSettings(show_presence=row["show_presence"])
    return user, int(row["unread_total"]), int(row["unread_version"]), settings


async def get_product(db: Database, product_id: int) -> Product:
    """The product as Parley has it: the marketplace's fields, and its status, which an
    accepted offer may have moved to ``reserved`` (for ``reserved_for``)."""
    check_id(product_id, "product_id")
    row = await db.fetchrow(f"SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1", product_id)
    if row is None:
        raise NotFound(f"product {product_id} not found")
    return Product(**row)


async def upsert_product(
    db: Database,
    product_id: int,
    seller_id: int,
    title: str = "",
    *,
    price_cents: int | None = None,
    currency: str = "USD",
    image_url: str | None = None,
    status: str = "active",
) -> tuple[Product, list[int]]:
    """Create or update a product; return it and the ids of conversations whose status changed.

    A product that becomes sold or deleted archives its conversations: their status becomes
    ``archived``, which puts them in both sides' archive; relisting it makes them active
    again, back in each side's inbox unless that side archived it themselves.

    Raises NotFound for an unknown seller, Forbidden when the product would change seller,
    InvalidArgument for a bad status, price or currency.
    """
    check_id(product_id, "product_id")
    check_id(seller_id, "seller_id")
    check_name(title, "title")
    check_url(image_url, "image_url")
    check_product(status, currency, price_cents)
    async with connection(db) as conn, conn.transaction():
        try:
            row = await conn.fetchrow(
                f"""
                INSERT INTO products
                       (id, seller_id, title, price_cents, currency, image_url, status)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (id) DO UPDATE
                    SET title = EXCLUDED.title, price_cents = EXCLUDED.price_cents,
                        currency = EXCLUDED.currency, image_url = EXCLUDED.image_url,
                        status = EXCLUDED.status
                    WHERE products.seller_id = EXCLUDED.seller_id
                RETURNING {PRODUCT_COLUMNS}
                """,
                product_id,
                seller_id,
                title,
                price_cents,
                currency,
                image_url,
                status,
            )
        except asyncpg.CheckViolationError:
            # Only an accepted offer reserves a listing; "reserved" keeps a reservation.
            raise NotReserved(f"product {product_id} is not reserved by an offer") from None
        except asyncpg.ForeignKeyViolationError:
            raise NotFound(f"seller {seller_id} is unknown; upsert the user first") from None
        if row is None:
            raise Forbidden(f"product {product_id} belongs to another seller; sellers are fixed")
        # The listing's conversation rows in id order first, the order every writer of
        # several conversations takes them in (sql/004, sql/008), then the update.
        await conn.execute(
            "SELECT id FROM conversations WHERE product_id = $1 ORDER BY id FOR UPDATE",
            product_id,
        )
        changed = await conn.fetch(
            """
            UPDATE conversations SET status = $2 WHERE product_id = $1 AND status <> $2
            RETURNING id
            """,
            product_id,
            "archived" if status in ("sold", "deleted") else "active",
        )
    return Product(**row), [r["id"] for r in changed]
