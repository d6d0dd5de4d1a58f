"""Value pools of the `bios` world: names, cities, universities, majors and employers.

Our own lists. Name words (first, middle, last) never occur inside an attribute value or a
template, so a name's tokens always mean "this person" and nothing else. Every person's full
name is unique, drawn from first x middle x last (~480,000 combinations).
"""

from __future__ import annotations

FEMALE_FIRST_NAMES = (
    "Abigail", "Adeline", "Alice", "Amelia", "Anna", "Audrey", "Beatrice", "Bianca", "Camila",
    "Caroline", "Cecilia", "Chloe", "Clara", "Daisy", "Delia", "Eleanor", "Eliza", "Emma",
    "Esther", "Evelyn", "Fiona", "Gwendolyn", "Georgia", "Grace", "Hannah", "Harriet", "Helen",
    "Iris", "Isabel", "Ivy", "Jane", "Julia", "Josephine", "Katherine", "Laura", "Leah", "Lillian",
    "Lucy", "Lydia", "Mabel", "Margaret", "Maya", "Miriam", "Naomi", "Nora", "Olivia",
    "Penelope", "Rachel", "Rosalind", "Ruth", "Sarah", "Sophia", "Stella", "Tessa", "Vera",
    "Violet", "Vivian", "Willa", "Zoe", "Matilda",
)  # fmt: skip

MALE_FIRST_NAMES = (
    "Aaron", "Adrian", "Albert", "Andrew", "Arthur", "Benjamin", "Caleb", "Calvin", "Daniel",
    "David", "Dominic", "Edgar", "Edward", "Elias", "Ethan", "Felix", "Francis", "Gabriel",
    "George", "Gideon", "Harold", "Henry", "Hugo", "Isaac", "Jacob", "James", "Jasper", "Joel",
    "Jonah", "Joseph", "Julian", "Kenneth", "Lawrence", "Leo", "Lucas", "Malcolm", "Martin",
    "Matthew", "Miles", "Nathan", "Nicholas", "Oliver", "Oscar", "Owen", "Patrick", "Peter",
    "Philip", "Quentin", "Raymond", "Robert", "Samuel", "Simon", "Stephen", "Theodore",
    "Thomas", "Victor", "Vincent", "Walter", "William", "Xavier",
)  # fmt: skip

MIDDLE_NAMES = (
    "Alex", "Avery", "Bailey", "Blair", "Cameron", "Casey", "Dale", "Drew", "Eden", "Ellis",
    "Emerson", "Finley", "Frankie", "Gray", "Harper", "Hayden", "Jamie", "Jordan", "Kai",
    "Kendall", "Lane", "Lee", "Logan", "Marlowe", "Morgan", "Noel", "Parker", "Quinn", "Reese",
    "Riley", "Robin", "Rowan", "Sage", "Shay", "Skyler", "Sloane", "Taylor", "Tatum", "Reagan",
    "Wren",
)  # fmt: skip

LAST_NAMES = (
    "Abbott", "Ainsley", "Albright", "Ashworth", "Bancroft", "Barlow", "Beckett", "Bellamy",
    "Blackwood", "Bramley", "Brennan", "Calloway", "Carver", "Chandler", "Clayton", "Colby",
    "Crawford", "Dalton", "Davenport", "Delaney", "Donovan", "Drummond", "Easton", "Ellsworth",
    "Everett", "Fairfax", "Fletcher", "Forsythe", "Galloway", "Garrison", "Gilmore", "Graham",
    "Hale", "Hartley", "Hastings", "Hawthorne", "Holloway", "Huxley", "Ingram", "Jennings",
    "Keating", "Kendrick", "Kingsley", "Lancaster", "Langley", "Lockwood", "Lowell", "Maddox",
    "Mansfield", "Marsh", "Mercer", "Merritt", "Montague", "Norwood", "Oakley", "Ogden",
    "Pemberton", "Prescott", "Radcliffe", "Ramsey", "Redmond", "Rhodes", "Rutherford",
    "Sawyer", "Sheffield", "Sinclair", "Stafford", "Sterling", "Sutton", "Talbot", "Thornton",
    "Townsend", "Underwood", "Vance", "Wadsworth", "Walcott", "Whitaker", "Whitfield",
    "Winslow", "Wolcott", "Yates", "Youngblood", "Archer", "Baxter", "Conley", "Dunmore",
    "Farrow", "Goddard", "Harlow", "Kirby", "Lambert", "Morrow", "Nash", "Pryor", "Quigley",
    "Rowe", "Slater", "Tolliver", "Vickers", "Weston",
)  # fmt: skip

CITIES = (
    "Amsterdam", "Athens", "Atlanta", "Auckland", "Austin", "Baltimore", "Bangkok", "Barcelona",
    "Beijing", "Belfast", "Berlin", "Bern", "Bilbao", "Birmingham", "Bogota", "Bologna",
    "Bordeaux", "Boston", "Brisbane", "Bristol", "Brussels", "Bucharest", "Budapest",
    "Buenos Aires", "Cairo", "Calgary", "Cape Town", "Cardiff", "Casablanca", "Chicago",
    "Cincinnati", "Cleveland", "Cologne", "Copenhagen", "Cork", "Dallas", "Delhi", "Denver",
    "Detroit", "Dubai", "Dublin", "Dundee", "Durban", "Edinburgh", "Frankfurt", "Geneva",
    "Genoa", "Glasgow", "Gothenburg", "Granada", "Hamburg", "Hanoi", "Helsinki", "Hong Kong",
    "Honolulu", "Houston", "Istanbul", "Jakarta", "Johannesburg", "Kansas City", "Kyoto",
    "Lagos", "Leeds", "Leipzig", "Lima", "Lisbon", "Liverpool", "Ljubljana", "London",
    "Los Angeles", "Lyon", "Madrid", "Manchester", "Manila", "Marseille", "Melbourne",
    "Memphis", "Mexico City", "Miami", "Milan", "Milwaukee", "Minneapolis", "Montreal",
    "Moscow", "Mumbai", "Munich", "Nairobi", "Nantes", "Naples", "Nashville", "New Orleans",
    "New York", "Osaka", "Oslo", "Ottawa", "Palermo", "Paris", "Perth", "Philadelphia",
    "Phoenix", "Pittsburgh", "Porto", "Portland", "Prague", "Quebec City", "Reykjavik", "Riga",
    "Rio de Janeiro", "Rome", "Rotterdam", "Sacramento", "Salzburg", "San Diego",
    "San Francisco", "Santiago", "Sao Paulo", "Seattle", "Seoul", "Seville", "Shanghai",
    "Singapore", "Stockholm", "Stuttgart", "Sydney", "Taipei", "Tallinn", "Tampa", "Tokyo",
    "Toronto", "Toulouse", "Turin", "Valencia", "Vancouver", "Venice", "Vienna", "Vilnius",
    "Warsaw", "Wellington", "Winnipeg", "Zagreb", "Zurich", "Antwerp", "Dresden", "Krakow",
    "Marrakesh", "Montevideo", "Nagoya", "Quito", "Tbilisi", "Tunis", "Utrecht",
)  # fmt: skip

# Universities: fictional place names, each in one of four naming patterns.
_UNIVERSITY_PLACES = (
    "Alderbrook", "Ashbury", "Belmont", "Birchfield", "Blackstone", "Briarwood", "Brookhaven",
    "Caldwell", "Camberley", "Carrington", "Cedarbrook", "Claremont", "Clearwater", "Coldwater",
    "Copperfield", "Cresthill", "Crestwood", "Dartmoor", "Deerfield", "Eastbrook", "Edgewater",
    "Elmhurst", "Fairhaven", "Fairmont", "Fernwood", "Foxhall", "Glenwood", "Goldcrest",
    "Greenfield", "Greystone", "Hallworth", "Harborview", "Hazelmere", "Highland", "Hillcrest",
    "Hollybrook", "Ironwood", "Kensford", "Kingsbridge", "Lakemont", "Larchmont", "Lindenwood",
    "Maplewood", "Marbury", "Meadowbrook", "Millbrook", "Moorfield", "Northgate", "Oakhaven",
    "Oldbridge", "Orchard Hill", "Pinecrest", "Pinehurst", "Queensbury", "Ravenwood",
    "Redcliff", "Ridgemont", "Riverside", "Rosemont", "Ryefield", "Saltmarsh", "Sandhurst",
    "Shadybrook", "Silverlake", "Southmere", "Springvale", "Stonebridge", "Stoneleigh",
    "Summerfield", "Sunnydale", "Thistlewood", "Thornbury", "Westbrook", "Westfield", "Whitmore",
    "Willowdale", "Windermere", "Woodbury", "Wrenfield", "Yarrow Point", "Ambervale",
    "Ashgrove", "Bayfield", "Beechwood", "Bellhaven", "Brightwater", "Broadmoor", "Cloverdale",
    "Coral Bay", "Corden", "Dovecote", "Elderwood", "Emberly", "Falconridge", "Foxmoor",
    "Glenbrook", "Copper Falls", "Hartwell", "Heathfield", "Highgate", "Juniper Hill",
    "Kestrel Point", "Lakewood", "Larkspur", "Lowmoor", "Marshfield", "Mistral", "Northwood",
    "Oakmere", "Pebblebrook", "Quarry Hill", "Redwater", "Rivermead", "Rockport", "Sablewood",
    "Seabrook", "Silverton", "Southbridge", "Starling", "Stillwater", "Sunridge", "Tamarack",
    "Timberline", "Valemont", "Wakefield", "Westmere", "Whitby", "Wildwood", "Winterbourne",
    "Woodhaven",
)  # fmt: skip
_UNIVERSITY_PATTERNS = (
    "{} University",
    "{} College",
    "{} Institute of Technology",
    "{} State University",
)
UNIVERSITIES = tuple(
    _UNIVERSITY_PATTERNS[i % len(_UNIVERSITY_PATTERNS)].format(place)
    for i, place in enumerate(_UNIVERSITY_PLACES)
)

MAJORS = (
    "Accounting", "Aerospace Engineering", "African Studies", "Agricultural Science",
    "Anthropology", "Applied Mathematics", "Archaeology", "Architecture", "Art History",
    "Astronomy", "Astrophysics", "Biochemistry", "Bioengineering", "Biology",
    "Biomedical Engineering", "Botany", "Business Administration", "Chemical Engineering",
    "Chemistry", "Civil Engineering", "Classics", "Cognitive Science", "Communications",
    "Comparative Literature", "Computer Engineering", "Computer Science", "Criminology", "Dance",
    "Data Science", "Dentistry", "Ecology", "Economics", "Education", "Electrical Engineering",
    "English Literature", "Environmental Science", "Epidemiology", "Ethnomusicology",
    "Film Studies", "Finance", "Fine Arts", "Forestry", "French", "Gender Studies", "Genetics",
    "Geography", "Geology", "German", "Graphic Design", "Greek", "History",
    "Hospitality Management", "Industrial Design", "Information Technology",
    "International Relations", "Italian", "Journalism", "Kinesiology", "Labor Studies", "Latin",
    "Law", "Library Science", "Linguistics", "Logistics", "Management", "Marine Biology",
    "Marketing", "Materials Science", "Mathematics", "Mechanical Engineering", "Medicine",
    "Meteorology", "Microbiology", "Music", "Music Theory", "Neuroscience",
    "Nuclear Engineering", "Nursing", "Nutrition", "Oceanography", "Pharmacology", "Philosophy",
    "Photography", "Physics", "Physiology", "Political Science", "Psychology", "Public Health",
    "Public Policy", "Religious Studies", "Robotics", "Russian", "Social Work", "Sociology",
    "Spanish", "Statistics", "Theater", "Urban Planning", "Veterinary Science", "Zoology",
)  # fmt: skip

# Employers: a fictional brand word plus a sector; sectors cycle so neighbours differ.
_EMPLOYER_BRANDS = (
    "Acorn", "Alcor", "Altura", "Amberly", "Apexon", "Arbora", "Ardent", "Argent", "Astral",
    "Aurelia", "Avalon", "Axiom", "Azure", "Banyan", "Beacon", "Bellwether", "Bluefin",
    "Boreal", "Brightline", "Bristle", "Cadence", "Caliber", "Canopy", "Capstone", "Cardinal",
    "Cascade", "Catalyst", "Cinder", "Citadel", "Cobalt", "Comet", "Compass", "Condor",
    "Copperline", "Corvid", "Crescent", "Crimson", "Crystal", "Cypress", "Delta", "Dynamo",
    "Echelon", "Eclipse", "Eldor", "Element", "Ember", "Emerald", "Endeavor", "Envoy",
    "Equinox", "Evergreen", "Falcon", "Fathom", "Firefly", "Flagship", "Flint", "Forge",
    "Fulcrum", "Galena", "Garnet", "Gemini", "Glacier", "Granite", "Gryphon", "Halcyon",
    "Harbor", "Helix", "Heron", "Horizon", "Hyperion", "Indigo", "Ironclad", "Javelin",
    "Keystone", "Kinetic", "Kodiak", "Lantern", "Lattice", "Laurel", "Legacy", "Lighthouse",
    "Linden", "Lodestar", "Lumen", "Lynx", "Magnolia", "Mariner", "Meridian", "Mesa", "Metro",
    "Monarch", "Mosaic", "Nautilus", "Nebula", "Nimbus", "Northstar", "Nova", "Oasis",
    "Obsidian", "Onyx", "Orbit", "Orion", "Osprey", "Outpost", "Paragon", "Pelican",
    "Peregrine", "Pinnacle", "Pioneer", "Polaris", "Prism", "Pulsar", "Quantum", "Quasar",
    "Radiant", "Rampart", "Raven", "Redwood", "Regent", "Relay", "Ridgeline", "Sapphire",
    "Sentinel", "Sequoia", "Sextant", "Sierra", "Solstice", "Sparrow", "Spectrum", "Sphinx",
    "Spire", "Summit", "Sundial", "Talon", "Tandem", "Tempest", "Terra", "Thunderbird",
    "Titan", "Topaz", "Torrent", "Tundra", "Umber", "Unity", "Vanguard", "Vector", "Velvet",
    "Venture", "Verdant", "Vertex", "Vista", "Vortex", "Wavelength", "Whirlwind", "Willow",
    "Zenith", "Zephyr", "Acumen", "Albatross", "Anchor", "Archway", "Atlas", "Aurora",
    "Basalt", "Bastion", "Bayou", "Blackbird", "Boulder", "Bramble", "Breakwater", "Buckeye",
    "Bulwark", "Caravan", "Carbon", "Centurion", "Chariot", "Chinook", "Clarion",
    "Cornerstone", "Coyote", "Dawnlight", "Driftwood", "Eagle", "Ebony", "Fjord", "Foxglove",
    "Frontier", "Gale", "Gazelle", "Goldleaf", "Harvest", "Heartland", "Highpoint", "Ibis",
    "Inlet", "Ivory", "Jade", "Kingfisher", "Lagoon", "Lark", "Marlin", "Mustang", "Nectar",
    "Oriole", "Pacer", "Palisade", "Panther", "Rapids", "Saffron", "Sandstone", "Seagull",
    "Sherpa", "Silverline", "Skylark", "Stallion", "Starboard", "Steelhead", "Stonewall",
    "Sycamore", "Thistle", "Tidewater", "Trailhead", "Trident", "Tulip", "Upland", "Valiant",
    "Waypoint", "Wildcat", "Windward", "Yukon",
)  # fmt: skip
_EMPLOYER_SECTORS = (
    "Systems", "Labs", "Freight", "Foods", "Energy", "Motors", "Pharmaceuticals", "Bank",
    "Media", "Insurance", "Airlines", "Machines", "Textiles", "Analytics", "Construction",
    "Software", "Biotech", "Publishing", "Consulting", "Shipping",
)  # fmt: skip
EMPLOYERS = tuple(
    f"{brand} {_EMPLOYER_SECTORS[i % len(_EMPLOYER_SECTORS)]}"
    for i, brand in enumerate(_EMPLOYER_BRANDS)
)

# Each employer has one headquarters city, fixed by the data (not by a world's seed), so the
# employer -> city function is the same in every world. A stride coprime to len(CITIES) spreads
# alphabetically adjacent employers over unrelated cities.
_HQ_STRIDE = 37
EMPLOYER_CITY = {
    employer: CITIES[(i * _HQ_STRIDE) % len(CITIES)] for i, employer in enumerate(EMPLOYERS)
}

MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
