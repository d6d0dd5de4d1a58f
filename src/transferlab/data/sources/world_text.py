"""A synthetic world's pretraining corpus as a source of text, so a world can be one domain of a
mixture beside real text (biographies next to Python code, say).

```yaml
data:
  sources:
    - {name: world_text, label: bios, world: {name: bios, num_people: 300, exposures: 10}}
    - {name: python_stdlib, label: code, side: pretraining}
```
Documents come in corpus order with ids ``doc-000000``, ...; ``metadata["group"]`` is the
world's document group (copies and rephrasings of one entity share it). The mixture splits
validation off by distinct texts, so with ``rephrasings > 1`` a person's facts can occur both in
a validation text and in another rephrasing that trains; keep ``rephrasings: 1`` (copies are
one text) when the domain's validation loss must share nothing with training.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from transferlab.config.registry import SOURCES, WORLDS
from transferlab.config.schemas import WorldConfig
from transferlab.data.sources.base import SourceConfig, SourceStats, TextDocument


@SOURCES.register("world_text")
class WorldTextConfig(SourceConfig):
    name: Literal["world_text"] = "world_text"
    world: WORLDS.field(WorldConfig, default="bios")  # the world whose corpus is read

    def _candidates(self, stats: SourceStats) -> Iterator[TextDocument]:
        world = self.world.build()
        texts, groups = world.documents(), world.document_groups()
        return (
            TextDocument(f"doc-{i:06d}", text, self.source_name, {"group": group})
            for i, (text, group) in enumerate(zip(texts, groups, strict=True))
        )
