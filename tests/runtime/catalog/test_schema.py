"""The served schema holds seed 004's Appendix C field for field: same names, arguments and
types (it may add fields, never change one)."""
from __future__ import annotations

from graphql import build_schema as parse_sdl

from runtime.catalog.schema import build_schema

#: Seed 004 Appendix C, as written (its scalars and enums declared so it parses).
APPENDIX_C = """
scalar DateTime
scalar JSON
enum AssetType { DEPLOYMENT }
enum HealthStatus { HEALTHY }
type AssetStats { workers: Int! }
type WorkerStatus { workerId: ID! }
input AddAssetInput { name: String! }
input UpdateAssetInput { tags: [String!] }

type Asset {
  id: ID!
  name: String!
  type: AssetType!
  source: String!
  discoveredAt: DateTime!
  discoveredBy: String!
  metadata: JSON!
  health: HealthStatus!
  lineage: [Asset!]!
  tags: [String!]!
}

type Query {
  assets(type: AssetType, source: String): [Asset!]!
  asset(id: ID!): Asset
  search(query: String!): [Asset!]!
  stats: AssetStats!
}

type Mutation {
  addAsset(input: AddAssetInput!): Asset!
  updateAsset(id: ID!, input: UpdateAssetInput!): Asset!
  deleteAsset(id: ID!): Boolean!
}

type Subscription {
  assetAdded: Asset!
  assetUpdated: Asset!
  workerProgress(workerId: ID!): WorkerStatus!
}
"""


def signatures(schema, type_name: str) -> dict[str, str]:
    fields = schema.get_type(type_name).fields
    return {name: f"({', '.join(f'{a}: {arg.type}' for a, arg in field.args.items())}) -> {field.type}"
            for name, field in fields.items()}


def test_the_served_schema_holds_appendix_c():
    seed, served = parse_sdl(APPENDIX_C), build_schema()._schema
    for type_name in ("Asset", "Query", "Mutation", "Subscription"):
        expected, actual = signatures(seed, type_name), signatures(served, type_name)
        assert {name: actual.get(name) for name in expected} == expected, type_name
    # Phase 0's count, and the enums' values the seed's plan uses.
    assert "total" in served.get_type("AssetCounts").fields
    assert {"DEPLOYMENT", "POD", "CONTAINER_IMAGE"} <= set(served.get_type("AssetType").values)
