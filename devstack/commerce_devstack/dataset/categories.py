"""The category tree of the data set (pure): ten departments, 3 to 5 levels, about 800 categories.

Level 1 is a department, level 2 a section with an attribute of its own, level 3 a product type;
some product types split into segments (level 4) and some segments into ranges (level 5).
Products sit in leaves. The same seed gives the same tree: ids are assigned depth-first from 1,
so products can name their categories without asking a database.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

AttributeValues = tuple[str | int | bool, ...]


@dataclass(frozen=True)
class Section:
    name: str
    product_types: tuple[str, ...]  # singular nouns; a category's name is the plural
    attribute: tuple[str, AttributeValues]  # the section's own attribute
    price_eur: tuple[int, int]  # typical price range, whole euros


@dataclass(frozen=True)
class Department:
    name: str
    attributes: dict[str, AttributeValues]  # every product of the department has these
    variant_axis: tuple[str, AttributeValues] | None  # what its variants differ in
    sections: tuple[Section, ...]


_COLOURS: AttributeValues = (
    "black", "white", "grey", "silver", "blue", "red", "green", "beige", "brown", "pink",
)  # fmt: skip
_SIZES: AttributeValues = ("XS", "S", "M", "L", "XL", "XXL")


def _section(
    name: str, types: str, attribute: tuple[str, AttributeValues], low: int, high: int
) -> Section:
    return Section(name, tuple(t.strip() for t in types.split(",")), attribute, (low, high))


DEPARTMENTS: tuple[Department, ...] = (
    Department(
        "Electronics",
        {"colour": _COLOURS, "warranty_years": (1, 2, 3), "wireless": (True, False)},
        ("colour", ("black", "white", "silver", "blue")),
        (
            _section("Audio", "headphone, speaker, soundbar, microphone, amplifier",
                     ("connectivity", ("bluetooth", "wired", "wifi")), 15, 600),
            _section("Computers", "laptop, desktop, monitor, keyboard, mouse",
                     ("ram_gb", (8, 16, 32, 64)), 20, 2500),
            _section("Phones", "smartphone, phone case, charger, power bank",
                     ("storage_gb", (64, 128, 256, 512)), 10, 1400),
            _section("Cameras", "camera, lens, tripod, drone, action camera",
                     ("megapixels", (12, 20, 24, 45)), 40, 3000),
            _section("Television", "television, projector, media player, antenna",
                     ("screen_inches", (32, 43, 55, 65, 75)), 30, 2800),
            _section("Gaming", "console, controller, gaming headset, racing wheel",
                     ("platform", ("pc", "console", "handheld")), 20, 700),
        ),
    ),
    Department(
        "Home and Kitchen",
        {"colour": _COLOURS, "material": ("steel", "ceramic", "glass", "wood", "plastic")},
        ("colour", ("white", "black", "red", "green")),
        (
            _section("Cookware", "frying pan, saucepan, wok, casserole, pressure cooker",
                     ("induction", (True, False)), 12, 300),
            _section("Small Appliances", "kettle, toaster, blender, coffee machine, air fryer",
                     ("power_w", (800, 1200, 1800, 2200)), 20, 900),
            _section("Tableware", "mug, plate, bowl, glass, cutlery set",
                     ("dishwasher_safe", (True, False)), 4, 150),
            _section("Storage", "food container, spice rack, bread bin, jar",
                     ("capacity_l", (1, 2, 5, 10)), 5, 80),
            _section("Bedding", "duvet, pillow, bed sheet, blanket, mattress topper",
                     ("bed_size", ("single", "double", "queen", "king")), 15, 400),
            _section("Lighting", "desk lamp, floor lamp, ceiling light, light bulb",
                     ("lumens", (400, 800, 1600, 3000)), 5, 350),
        ),
    ),
    Department(
        "Fashion",
        {"material": ("cotton", "wool", "linen", "polyester", "leather", "denim"),
         "fit": ("slim", "regular", "relaxed")},
        ("size", _SIZES),
        (
            _section("Women", "dress, blouse, skirt, jumper, coat",
                     ("season", ("spring", "summer", "autumn", "winter")), 15, 300),
            _section("Men", "shirt, trousers, jacket, polo shirt, suit",
                     ("season", ("spring", "summer", "autumn", "winter")), 15, 400),
            _section("Kids", "t-shirt, hoodie, dungarees, pyjamas",
                     ("age_years", (2, 4, 6, 8, 10, 12)), 8, 80),
            _section("Shoes", "trainer, boot, sandal, loafer, slipper",
                     ("sole", ("rubber", "leather", "foam")), 20, 250),
            _section("Accessories", "belt, scarf, hat, glove, wallet",
                     ("pattern", ("plain", "striped", "checked", "dotted")), 8, 150),
            _section("Sportswear", "running shirt, legging, tracksuit, sports bra",
                     ("breathable", (True, False)), 12, 150),
        ),
    ),
    Department(
        "Sports and Outdoors",
        {"colour": _COLOURS, "weight_g": (250, 500, 1000, 2500, 5000)},
        ("colour", ("black", "blue", "red", "green")),
        (
            _section("Camping", "tent, sleeping bag, camping stove, lantern, camping chair",
                     ("persons", (1, 2, 3, 4, 6)), 15, 600),
            _section("Cycling", "bicycle, helmet, bike light, bike lock, pump",
                     ("wheel_inches", (20, 26, 27, 29)), 10, 2500),
            _section("Fitness", "dumbbell, yoga mat, kettlebell, resistance band, bench",
                     ("level", ("beginner", "intermediate", "pro")), 8, 700),
            _section("Water Sports", "swimsuit, goggles, wetsuit, paddle board",
                     ("thickness_mm", (2, 3, 5)), 10, 900),
            _section("Team Sports", "football, basketball, shin guard, goal, jersey",
                     ("official_size", (True, False)), 10, 300),
            _section("Hiking", "backpack, walking pole, water bottle, compass",
                     ("waterproof", (True, False)), 8, 350),
        ),
    ),
    Department(
        "Toys and Games",
        {"age_from": (0, 3, 6, 8, 12), "battery_powered": (True, False)},
        None,
        (
            _section("Building", "building set, marble run, construction kit",
                     ("pieces", (100, 250, 500, 1000, 2000)), 10, 300),
            _section("Board Games", "board game, card game, puzzle, chess set",
                     ("players", (2, 4, 6, 8)), 8, 90),
            _section("Dolls", "doll, doll house, action figure, plush toy",
                     ("collectible", (True, False)), 6, 150),
            _section("Outdoor Toys", "trampoline, swing, scooter, water pistol",
                     ("max_load_kg", (25, 50, 100)), 10, 500),
            _section("Learning", "science kit, globe, microscope, coding robot",
                     ("subject", ("science", "maths", "language", "geography")), 12, 250),
        ),
    ),
    Department(
        "Beauty",
        {"vegan": (True, False), "volume_ml": (30, 50, 100, 200, 500)},
        None,
        (
            _section("Skin Care", "moisturiser, cleanser, serum, face mask, sun cream",
                     ("skin_type", ("dry", "oily", "combination", "sensitive")), 5, 120),
            _section("Hair Care", "shampoo, conditioner, hair dryer, straightener",
                     ("hair_type", ("fine", "thick", "curly", "coloured")), 4, 250),
            _section("Make-up", "lipstick, mascara, foundation, eyeshadow palette",
                     ("finish", ("matte", "satin", "gloss")), 5, 80),
            _section("Fragrance", "perfume, eau de toilette, body mist, aftershave",
                     ("scent", ("floral", "woody", "fresh", "oriental")), 10, 200),
            _section("Shaving", "razor, shaver, trimmer, shaving foam",
                     ("blades", (1, 3, 5)), 3, 300),
        ),
    ),
    Department(
        "Books",
        {"language": ("english", "german", "french", "spanish"),
         "format": ("paperback", "hardcover", "ebook")},
        None,
        (
            _section("Fiction", "novel, short story collection, thriller, fantasy novel",
                     ("pages", (150, 300, 500, 800)), 5, 40),
            _section("Non-fiction", "biography, history book, essay collection, travel guide",
                     ("illustrated", (True, False)), 8, 60),
            _section("Children's Books", "picture book, first reader, activity book",
                     ("age_from", (0, 3, 6, 9)), 4, 30),
            _section("Cookbooks", "baking book, vegetarian cookbook, grill book",
                     ("recipes", (50, 100, 200)), 10, 50),
            _section("Textbooks", "maths textbook, language course, science textbook",
                     ("edition", (1, 2, 3, 4, 5)), 15, 120),
        ),
    ),
    Department(
        "Garden",
        {"material": ("steel", "wood", "plastic", "rattan", "aluminium"),
         "weatherproof": (True, False)},
        ("colour", ("green", "grey", "brown", "black")),
        (
            _section("Garden Tools", "spade, rake, pruner, hoe, wheelbarrow",
                     ("handle_cm", (30, 80, 120, 150)), 8, 200),
            _section("Garden Furniture", "garden chair, garden table, parasol, hammock",
                     ("seats", (1, 2, 4, 6)), 25, 1200),
            _section("Watering", "hose, sprinkler, watering can, rain barrel",
                     ("length_m", (10, 15, 25, 50)), 5, 250),
            _section("Power Tools", "lawn mower, hedge trimmer, leaf blower, chainsaw",
                     ("cordless", (True, False)), 40, 900),
            _section("Plants", "seed packet, flower bulb, plant pot, compost",
                     ("sunlight", ("full sun", "partial shade", "shade")), 2, 60),
        ),
    ),
    Department(
        "Automotive",
        {"universal_fit": (True, False), "warranty_years": (1, 2, 5)},
        None,
        (
            _section("Car Care", "car shampoo, wax, polishing cloth, pressure washer",
                     ("volume_ml", (500, 1000, 5000)), 5, 400),
            _section("Car Electronics", "dash cam, car charger, sat nav, car speaker",
                     ("voltage", (12, 24)), 15, 500),
            _section("Tyres", "summer tyre, winter tyre, all-season tyre, snow chain",
                     ("rim_inches", (15, 16, 17, 18, 19)), 40, 350),
            _section("Tools and Equipment", "jack, jump starter, tyre inflator, tool kit",
                     ("max_load_kg", (1000, 2000, 3000)), 15, 300),
            _section("Interior", "seat cover, floor mat, steering wheel cover, organiser",
                     ("washable", (True, False)), 8, 150),
        ),
    ),
    Department(
        "Office",
        {"colour": _COLOURS, "recycled": (True, False)},
        ("colour", ("black", "blue", "red", "green")),
        (
            _section("Writing", "pen, pencil, marker, fountain pen, highlighter",
                     ("refillable", (True, False)), 1, 120),
            _section("Paper", "notebook, printer paper, envelope, sticky note",
                     ("sheets", (50, 100, 500)), 2, 40),
            _section("Furniture", "office chair, desk, filing cabinet, bookcase",
                     ("adjustable", (True, False)), 40, 1200),
            _section("Organisation", "binder, folder, desk organiser, label maker",
                     ("format", ("A4", "A5", "letter")), 3, 90),
            _section("Printing", "printer, ink cartridge, toner, scanner",
                     ("duplex", (True, False)), 10, 600),
        ),
    ),
)  # fmt: skip

# Level-4 segments and level-5 ranges: what a product type splits into when it does.
SEGMENTS = ("For Kids", "Professional", "Compact", "Premium", "Eco", "Travel")
RANGES = ("Essentials", "Signature", "Limited Edition", "Classic")


@dataclass(frozen=True)
class CategoryNode:
    id: int
    name: str
    parent_id: int | None
    level: int  # 1 for a department
    path: str  # ids from the root down, "1/4/28", as the product service stores it
    department: int  # index into DEPARTMENTS
    section: int  # index into the department's sections; -1 for a department
    product_type: str | None  # set from level 3 down
    segment: str | None  # set at levels 4 and 5, the name of the level-4 ancestor


def plural(noun: str) -> str:
    """Good enough for the nouns above: "glass" -> "glasses", "battery" -> "batteries"."""
    last = noun.split()[-1]
    if last.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if last.endswith("y") and last[-2:-1] not in ("a", "e", "o", "u"):
        return noun[:-1] + "ies"
    return noun + "s"


def category_tree(seed: int) -> list[CategoryNode]:
    """Every category, parents before children (depth-first), ids 1..len()."""
    rng = random.Random(seed)
    nodes: list[CategoryNode] = []

    def add(
        name: str, parent: CategoryNode | None, department: int, section: int,
        product_type: str | None, segment: str | None,
    ) -> CategoryNode:  # fmt: skip
        node_id = len(nodes) + 1
        node = CategoryNode(
            id=node_id,
            name=name,
            parent_id=parent.id if parent else None,
            level=parent.level + 1 if parent else 1,
            path=f"{parent.path}/{node_id}" if parent else str(node_id),
            department=department,
            section=section,
            product_type=product_type,
            segment=segment,
        )
        nodes.append(node)
        return node

    for d, department in enumerate(DEPARTMENTS):
        root = add(department.name, None, d, -1, None, None)
        for s, section in enumerate(department.sections):
            middle = add(section.name, root, d, s, None, None)
            for product_type in section.product_types:
                leaf = add(plural(product_type).title(), middle, d, s, product_type, None)
                if rng.random() < 0.45:  # a product type that splits into segments
                    for segment in rng.sample(SEGMENTS, rng.randint(2, 3)):
                        seg = add(segment, leaf, d, s, product_type, segment)
                        if rng.random() < 0.3:
                            for line in rng.sample(RANGES, rng.randint(2, 3)):
                                add(line, seg, d, s, product_type, segment)
    return nodes


def leaves(tree: list[CategoryNode]) -> list[CategoryNode]:
    """The categories products are put in: those without children."""
    parents = {node.parent_id for node in tree}
    return [node for node in tree if node.id not in parents]
