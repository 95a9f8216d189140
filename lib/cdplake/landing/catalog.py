"""Static reference data of the fictional shop the demo data describes.

Kept as plain tuples so the generator's randomness comes from one seeded RNG only.
"""

from __future__ import annotations

from dataclasses import dataclass

SHOP_URL = "https://shop.cdplake.example"


@dataclass(frozen=True)
class Product:
    """One sellable item, shared by web events and orders."""

    product_id: str
    sku: str
    name: str
    category: str
    price: float


_PRODUCT_NAMES: dict[str, tuple[tuple[str, float], ...]] = {
    "womenswear": (
        ("Merino Crew Jumper", 59.0),
        ("Linen Wrap Dress", 75.0),
        ("High-Rise Straight Jeans", 49.5),
        ("Quilted Gilet", 69.0),
        ("Silk Blend Blouse", 45.0),
        ("Wool Coat", 189.0),
    ),
    "menswear": (
        ("Oxford Shirt", 39.5),
        ("Slim Chinos", 45.0),
        ("Lambswool Cardigan", 65.0),
        ("Waxed Field Jacket", 149.0),
        ("Organic Cotton T-Shirt", 18.0),
    ),
    "footwear": (
        ("Leather Chelsea Boots", 110.0),
        ("Canvas Trainers", 42.0),
        ("Suede Loafers", 85.0),
        ("Running Shoes", 95.0),
    ),
    "home": (
        ("Linen Duvet Cover", 89.0),
        ("Stoneware Mug Set", 24.0),
        ("Wool Throw", 58.0),
        ("Scented Candle", 16.5),
        ("Cotton Bath Towel", 14.0),
        ("Oak Serving Board", 32.0),
    ),
    "beauty": (
        ("Hand Cream", 12.0),
        ("Eau de Parfum 50ml", 68.0),
        ("Vitamin C Serum", 29.0),
        ("Lip Balm Trio", 9.5),
    ),
    "accessories": (
        ("Leather Belt", 29.0),
        ("Cashmere Scarf", 79.0),
        ("Canvas Tote Bag", 22.0),
        ("Wool Beanie", 19.0),
        ("Sunglasses", 55.0),
    ),
}


def _build_products() -> tuple[Product, ...]:
    out: list[Product] = []
    for category, items in _PRODUCT_NAMES.items():
        for name, price in items:
            n = len(out) + 1
            out.append(Product(f"prod_{1000 + n}", f"{category[:3].upper()}-{n:04d}", name, category, price))
    return tuple(out)


PRODUCTS: tuple[Product, ...] = _build_products()

# (store_id, city); POS orders carry the store id, web orders carry WEB_STORE_ID.
STORES: tuple[tuple[str, str], ...] = (
    ("S001", "London"),
    ("S002", "London"),
    ("S003", "Manchester"),
    ("S004", "Birmingham"),
    ("S005", "Leeds"),
    ("S006", "Bristol"),
    ("S007", "Edinburgh"),
    ("S008", "Glasgow"),
    ("S009", "Cardiff"),
    ("S010", "Dublin"),
)
WEB_STORE_ID = "WEB"

CAMPAIGN_THEMES: tuple[str, ...] = (
    "weekly-newsletter",
    "new-arrivals",
    "autumn-sale",
    "loyalty-rewards",
    "winter-edit",
    "black-friday-preview",
    "gift-guide",
)

BROWSER_USER_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/141.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.6 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/141.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:143.0) Gecko/20100101 Firefox/143.0",
    "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/27.0 Chrome/125.0.0.0 Mobile Safari/537.36",
)
APP_USER_AGENT = "ShopApp/5.12.0 (iPhone; iOS 18.6; Scale/3.00)"

# What opens look like to the ESP: Gmail's image proxy, desktop clients, and Apple Mail
# Privacy Protection, whose proxy fetches every image seconds after delivery ("machine opens").
MAIL_CLIENT_USER_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.18025; Pro)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
)
APPLE_PROXY_USER_AGENT = "Mozilla/5.0"

EMAIL_DOMAINS: dict[str, tuple[tuple[str, int], ...]] = {
    "GB": (
        ("gmail.com", 34),
        ("hotmail.co.uk", 12),
        ("outlook.com", 10),
        ("icloud.com", 10),
        ("yahoo.co.uk", 8),
        ("btinternet.com", 5),
        ("sky.com", 3),
        ("live.co.uk", 3),
    ),
    "IE": (("gmail.com", 40), ("eircom.net", 10), ("hotmail.com", 10), ("icloud.com", 8)),
    "US": (("gmail.com", 40), ("yahoo.com", 15), ("outlook.com", 10), ("icloud.com", 12)),
    "DE": (("gmail.com", 25), ("gmx.de", 20), ("web.de", 20), ("t-online.de", 8)),
    "FR": (("gmail.com", 30), ("orange.fr", 20), ("free.fr", 12), ("laposte.net", 8)),
}

NICKNAMES: dict[str, tuple[str, ...]] = {
    "Robert": ("Bob", "Rob"),
    "William": ("Bill", "Will"),
    "Elizabeth": ("Liz", "Beth"),
    "Katherine": ("Kate", "Kath"),
    "Catherine": ("Cath", "Kate"),
    "Margaret": ("Maggie", "Peggy"),
    "James": ("Jim", "Jamie"),
    "Thomas": ("Tom",),
    "Michael": ("Mike",),
    "Christopher": ("Chris",),
    "Jennifer": ("Jen", "Jenny"),
    "Alexander": ("Alex",),
    "Daniel": ("Dan", "Danny"),
    "Samuel": ("Sam",),
    "Rebecca": ("Becky", "Becca"),
    "Victoria": ("Vicky", "Tori"),
    "Jessica": ("Jess",),
    "Matthew": ("Matt",),
    "Benjamin": ("Ben",),
    "Joseph": ("Joe",),
    "Edward": ("Ed", "Ted"),
    "Richard": ("Rich", "Dick"),
    "Anthony": ("Tony",),
    "Andrew": ("Andy",),
    "Stephen": ("Steve",),
    "Nicholas": ("Nick",),
    "Jonathan": ("Jon",),
    "Eleanor": ("Ellie",),
    "Samantha": ("Sam",),
    "Abigail": ("Abi", "Abby"),
    "Charlotte": ("Lottie",),
    "Deborah": ("Debbie",),
    "Patricia": ("Pat", "Trish"),
}

STREET_ABBREVIATIONS: dict[str, str] = {
    "Street": "St",
    "Road": "Rd",
    "Avenue": "Ave",
    "Lane": "Ln",
    "Drive": "Dr",
    "Close": "Cl",
    "Crescent": "Cres",
    "Court": "Ct",
    "Gardens": "Gdns",
    "Place": "Pl",
}

COUNTRY_SPELLINGS: dict[str, tuple[str, ...]] = {
    "GB": ("GB", "GB", "GB", "United Kingdom", "UK", "gb"),
    "IE": ("IE", "IE", "Ireland"),
    "US": ("US", "US", "USA", "United States"),
    "DE": ("DE", "DE", "Germany"),
    "FR": ("FR", "FR", "France"),
}

LOYALTY_TIERS: tuple[str, ...] = ("bronze", "silver", "gold", "platinum")
