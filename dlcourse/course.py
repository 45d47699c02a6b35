"""The course map: notebooks, curriculum claims, package modules, and the glossary.

One source of truth, shown in ``notebooks/00_welcome.ipynb`` and written to
``docs/course-map.md`` and ``docs/glossary.md`` (``tests/test_course.py`` keeps
them equal). The claims are those of ``CURRICULUM.md``; each notebook's first
cell lists its claim IDs, and the tests check that they match this map.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    korean: str  # the term in the Korean study notes the course is built from


@dataclass(frozen=True)
class Notebook:
    number: int
    filename: str
    title: str
    claims: tuple[str, ...]
    modules: tuple[str, ...]  # dlcourse modules the notebook uses

    @property
    def path(self) -> str:
        return f"notebooks/{self.filename}"

    @property
    def slug(self) -> str:
        """The notebook's name without its number: the name of its modules in
        ``dlcourse/exercises/`` and ``dlcourse/widgets/`` (``02_activations_and_init.ipynb``:
        ``activations_and_init``)."""
        return self.filename.removesuffix(".ipynb").split("_", 1)[1]


@dataclass(frozen=True)
class Term:
    korean: str
    english: str
    meaning: str
    notebook: int


CLAIMS: tuple[Claim, ...] = (
    Claim("C0.1", "Deep networks represent functions efficiently but are hard to train.", "심층 신경망"),
    Claim("C0.2", "Big data, GPUs, new techniques and better models made them work.", "GPU를 활용하는 기술"),
    Claim("C1.1", "Gradient descent can stop in a local minimum whose error is too high.", "지역 극소"),
    Claim("C1.2", "Simulated annealing accepts uphill moves and escapes local minima.", "시뮬레이티드 어닐링"),
    Claim("C1.3", "A falling learning rate ends lower than a small constant one, steadier than a large one.", "학습률"),
    Claim("C1.4", "SGD's noise leaves shallow minima; it updates far more per epoch.", "확률적 기울기 강하"),
    Claim("C2.1", "On a plateau the error curve is flat and learning stalls.", "플라토"),
    Claim("C2.2", "Small activation derivatives make gradients vanish layer by layer.", "기울기 소멸"),
    Claim("C2.3", "ReLU's gradient does not shrink; deep ReLU nets train where sigmoid fails.", "활성화 함수의 변화"),
    Claim("C2.4", "Small, different random weights avoid saturation and symmetry.", "가중치 초기화"),
    Claim("C2.5", "Momentum adds the previous step: faster and steadier descent.", "모멘텀"),
    Claim("C2.6", "Adaptive rates give each weight its own step size.", "적응적 학습률"),
    Claim("C2.7", "Batch normalisation keeps activations in a range that does not saturate.", "배치 정규화"),
    Claim("C2.8", "Second-order methods use curvature; their cost limits them.", "2차 미분 방법"),
    Claim("C3.1", "Networks learn the noise in their training data; complex ones more so.", "과다 적합"),
    Claim("C3.2", "Early stopping halts training when validation error rises.", "조기 종료"),
    Claim("C3.3", "A penalty term keeps weights from growing too large.", "정규항"),
    Claim("C3.4", "Dropout leaves out random hidden units during training.", "드롭아웃"),
    Claim("C3.5", "Transformed copies of the data make more training data.", "데이터 증대"),
    Claim("C4.1", "CNNs, inspired by the visual cortex, suit grid data such as images.", "합성곱 신경망"),
    Claim("C4.2", "Convolution, pooling and fully connected layers, trained by backprop.", "오류 역전파"),
    Claim("C4.3", "A filter shared across positions: few parameters, local connections.", "가중치 공유"),
    Claim("C4.4", "Zero padding lets the filter reach the border.", "패딩"),
    Claim("C4.5", "The stride sets how far the filter moves and the output's size.", "보폭"),
    Claim("C4.6", "Pooling shrinks feature maps and keeps their number.", "풀링"),
    Claim("C5.1", "RNNs model data that arrives as a sequence over time.", "순환 신경망"),
    Claim("C5.2", "RNNs stack into layers and read in both directions.", "양방향 RNN"),
    Claim("C5.3", "Tasks pair inputs and outputs 1:m, m:1 or m:n.", "이미지 캡셔닝"),
    Claim("C5.4", "BPTT trains RNNs; gradients vanish or explode over long sequences.", "기울기 폭발"),
    Claim("C5.5", "LSTM's forget, input and output gates keep long-term memory.", "망각 게이트"),
    Claim("C5.6", "GRU: two gates, reset and update, a simpler LSTM.", "게이트 순환 유닛"),
)  # fmt: skip

NOTEBOOKS: tuple[Notebook, ...] = (
    Notebook(
        0,
        "00_welcome.ipynb",
        "Welcome: why deep learning works now; tensors, autograd, devices",
        ("C0.1", "C0.2"),
        (
            "env",
            "course",
            "depth",
            "benchmark",
            "data",
            "train",
            "callbacks",
            "plot",
            "report",
            "exercises",
            "widgets",
        ),
    ),
    Notebook(
        1,
        "01_gradient_descent.ipynb",
        "Gradient descent, local minima, simulated annealing, SGD",
        ("C1.1", "C1.2", "C1.3", "C1.4"),
        (
            "env",
            "landscapes",
            "anneal",
            "optim",
            "schedules",
            "data",
            "train",
            "callbacks",
            "benchmark",
            "plot",
            "report",
            "exercises",
            "widgets",
        ),
    ),
    Notebook(
        2,
        "02_activations_and_init.ipynb",
        "Slow learning: plateaus, vanishing gradients, ReLU, weight initialisation",
        ("C2.2", "C2.1", "C2.3", "C2.4"),
        (
            "env",
            "activations",
            "models",
            "init",
            "diagnostics",
            "data",
            "train",
            "optim",
            "plot",
            "report",
            "exercises",
            "widgets",
        ),
    ),
    Notebook(
        3,
        "03_optimizers.ipynb",
        "Momentum, adaptive learning rates, second-order methods",
        ("C2.5", "C2.6", "C2.8"),  # and C2.1 again: momentum across a plateau
        (
            "env",
            "optim",
            "second_order",
            "landscapes",
            "data",
            "train",
            "benchmark",
            "plot",
            "report",
            "exercises",
            "widgets",
        ),
    ),
    Notebook(
        4,
        "04_batch_norm.ipynb",
        "Batch normalisation",
        ("C2.7",),  # and C2.1, C2.2 again: the sigmoid's plateau, cured
        (
            "env",
            "norm",
            "models",
            "init",
            "data",
            "train",
            "optim",
            "callbacks",
            "activations",
            "diagnostics",
            "plot",
            "report",
            "exercises",
            "widgets",
        ),
    ),
    Notebook(
        5,
        "05_overfitting.ipynb",
        "Overfitting and its remedies",
        ("C3.1", "C3.2", "C3.3", "C3.4", "C3.5"),
        (
            "env",
            "data",
            "capacity",
            "models",
            "train",
            "optim",
            "callbacks",
            "regularization",
            "augment",
            "plot",
            "report",
            "exercises",
            "widgets",
        ),
    ),
    Notebook(
        6,
        "06_convolutional_networks.ipynb",
        "Convolutional networks",
        ("C4.1", "C4.2", "C4.3", "C4.4", "C4.5", "C4.6"),
        (
            "env",
            "conv",
            "data",
            "augment",
            "models",
            "train",
            "optim",
            "benchmark",
            "plot",
            "report",
            "exercises",
            "widgets",
        ),
    ),
    Notebook(
        7,
        "07_recurrent_networks.ipynb",
        "Recurrent networks, BPTT, LSTM and GRU, sequence tasks",
        ("C5.1", "C5.2", "C5.3", "C5.4", "C5.5", "C5.6"),
        (
            "env",
            "rnn",
            "sequences",
            "models",
            "data",
            "train",
            "optim",
            "plot",
            "report",
            "exercises",
            "widgets",
        ),
    ),
    Notebook(
        8,
        "08_capstone.ipynb",
        "Capstone: MNIST-1D's published table reproduced, then beaten, with the course's parts",
        (),  # no claim of its own: it puts 01-07's to work, and its closing map names them
        (
            "env",
            "data",
            "capstone",
            "conv",
            "norm",
            "regularization",
            "course",
            "widgets",
        ),
    ),
)

GLOSSARY: tuple[Term, ...] = (
    Term("딥러닝", "deep learning", "machine learning with deep neural networks", 0),
    Term("심층 신경망", "deep neural network", "a network with many hidden layers", 0),
    Term("GPU를 활용하는 기술", "GPU computing", "running the many multiply-adds in parallel on a GPU", 0),
    Term("오류 역전파", "back-propagation", "the chain rule applied layer by layer to get gradients", 0),
    Term("오차함수", "error function (loss)", "what training minimises: how wrong the outputs are", 0),
    Term("학습곡선", "learning curve", "the error plotted against training steps or epochs", 0),
    Term("일반화", "generalisation", "doing well on data not seen in training", 0),
    Term("기울기 강하 학습법", "gradient descent", "repeatedly step against the gradient of the error", 1),
    Term("지역 극소", "local minimum", "a point lower than its neighbours but not the lowest", 1),
    Term("시뮬레이티드 어닐링 (담금질)", "simulated annealing", "accept uphill moves with a probability set by a falling temperature", 1),
    Term("학습률", "learning rate", "the step size of gradient descent", 1),
    Term("확률적 기울기 강하", "stochastic gradient descent (SGD)", "update from one sample (or a mini-batch) at a time", 1),
    Term("느린 학습 문제", "slow-learning problem", "training that makes little progress per step", 2),
    Term("플라토", "plateau", "a flat stretch of the error curve", 2),
    Term("기울기 소멸", "vanishing gradient", "gradients shrinking layer by layer towards the input", 2),
    Term("활성화 함수", "activation function", "the non-linearity applied by each unit", 2),
    Term("시그모이드", "sigmoid", "1 / (1 + e^-x): squashes to (0, 1), slope at most 1/4", 2),
    Term("하이퍼탄젠트", "hyperbolic tangent (tanh)", "squashes to (-1, 1), slope at most 1", 2),
    Term("가중치 초기화", "weight initialisation", "how weights are set before training", 2),
    Term("셀 포화", "saturation", "a unit stuck where its activation is flat (sigmoid near 0 or 1)", 2),
    Term("모멘텀", "momentum", "adding part of the previous step to the current one", 3),
    Term("관성", "inertia", "momentum's carrying on in the direction of the previous movement", 3),
    Term("기울기 수정식", "update rule", "the formula that changes a weight from its gradient", 3),
    Term("누적합", "accumulated sum", "a running total, e.g. AdaGrad's sum of squared gradients", 3),
    Term("적응적 학습률", "adaptive learning rate", "a step size per weight, from the history of its gradients", 3),
    Term("2차 미분 방법", "second-order method", "using curvature (the Hessian) as well as the gradient", 3),
    Term("곡률", "curvature", "how fast the gradient changes: the second derivative", 3),
    Term("배치 정규화", "batch normalisation", "normalising each unit's inputs over the mini-batch", 4),
    Term("미니배치", "mini-batch", "the few samples one training step computes its gradient from", 4),
    Term("과다 적합", "overfitting", "fitting the training data's noise, so test error rises", 5),
    Term("조기 종료", "early stopping", "stopping when the validation error stops falling", 5),
    Term("검증용 데이터 집합", "validation set", "held-out data used to make training decisions", 5),
    Term("정규항", "regularisation term", "a penalty on large weights added to the error", 5),
    Term("드롭아웃", "dropout", "leaving out random hidden units at each training step", 5),
    Term("데이터 증대", "data augmentation", "making more training data by transforming it", 5),
    Term("합성곱 신경망", "convolutional neural network (CNN)", "a network of convolution, pooling and dense layers", 6),
    Term("콘볼루션", "convolution", "a filter multiplied and summed at every position", 6),
    Term("가중치 공유", "weight sharing", "the same filter weights at every position", 6),
    Term("부분적인 연결", "partial (local) connectivity", "each output sees only a small window of the input", 6),
    Term("특징맵", "feature map", "the grid of one filter's outputs", 6),
    Term("패딩", "padding", "zeros added around the border", 6),
    Term("보폭", "stride", "how far the filter moves each step", 6),
    Term("풀링 (서브샘플링)", "pooling (subsampling)", "max or average over a window to shrink a map", 6),
    Term("완전 연결", "fully connected", "every input joined to every output (an MLP layer)", 6),
    Term("수용 영역", "receptive field", "the window of the input that one output depends on", 6),
    Term("순환 신경망", "recurrent neural network (RNN)", "a network that carries a hidden state through a sequence", 7),
    Term("다층 RNN", "multi-layer RNN", "RNNs stacked, each reading the one below", 7),
    Term("양방향 RNN", "bidirectional RNN", "one RNN reads forwards, another backwards", 7),
    Term("시간 역전파 (BPTT)", "back-propagation through time", "back-propagation through the unrolled sequence (the notes write 사전 역전파, a slip for 시간 역전파)", 7),
    Term("기울기 폭발", "exploding gradient", "gradients growing without bound over long sequences", 7),
    Term("장기의존성", "long-term dependency", "an output that depends on inputs far back in time", 7),
    Term("망각 게이트", "forget gate", "how much of the cell state to forget", 7),
    Term("입력 게이트", "input gate", "how much new information enters the cell state", 7),
    Term("출력 게이트", "output gate", "how much of the cell state to output", 7),
    Term("게이트 순환 유닛", "gated recurrent unit (GRU)", "a simpler LSTM with two gates", 7),
    Term("리셋 게이트", "reset gate", "how much of the previous output to use", 7),
    Term("갱신 게이트", "update gate", "the forget and input gates merged into one", 7),
)  # fmt: skip


def claim(claim_id: str) -> Claim:
    """The claim with this ID, e.g. ``claim('C2.2')``."""
    for c in CLAIMS:
        if c.id == claim_id:
            return c
    raise KeyError(f"no claim {claim_id!r}; the IDs run from {CLAIMS[0].id} to {CLAIMS[-1].id}")


def notebook(number: int) -> Notebook:
    """The course notebook with this number (0 to 8)."""
    for nb in NOTEBOOKS:
        if nb.number == number:
            return nb
    raise KeyError(f"no notebook {number}; the course has notebooks 0 to {NOTEBOOKS[-1].number}")


def course_map_markdown() -> str:
    """The course map as a Markdown table: notebook, topic, claims, modules."""
    rows = [
        "| # | notebook | topic | claims | `dlcourse` modules |",
        "|---|---|---|---|---|",
    ]
    for nb in NOTEBOOKS:
        modules = ", ".join(f"`{m}`" for m in nb.modules)
        rows.append(
            f"| {nb.number:02d} | `{nb.filename}` | {nb.title} | {', '.join(nb.claims)} | {modules} |"
        )
    return "\n".join(rows)


def claims_markdown() -> str:
    """Every curriculum claim with its Korean term, as a Markdown table."""
    rows = ["| ID | claim | 용어 (term) |", "|---|---|---|"]
    rows += [f"| {c.id} | {c.text} | {c.korean} |" for c in CLAIMS]
    return "\n".join(rows)


def glossary_markdown(number: int | None = None) -> str:
    """The glossary (Korean, English, meaning) as a Markdown table; one notebook's terms if given."""
    terms = [t for t in GLOSSARY if number is None or t.notebook == number]
    rows = ["| 한국어 | English | meaning | notebook |", "|---|---|---|---|"]
    rows += [f"| {t.korean} | {t.english} | {t.meaning} | {t.notebook:02d} |" for t in terms]
    return "\n".join(rows)


def course_map_document() -> str:
    """The text of ``docs/course-map.md``."""
    return (
        "# Course map\n\n"
        "Written by `dlcourse.course.course_map_document()`; edit `dlcourse/course.py`, "
        "not this file.\n\n"
        f"{course_map_markdown()}\n\n"
        "## Claims\n\n"
        "Each claim is shown by an experiment that its notebook runs and asserts.\n\n"
        f"{claims_markdown()}\n"
    )


def glossary_document() -> str:
    """The text of ``docs/glossary.md``."""
    return (
        "# Glossary: 용어집\n\n"
        "The Korean terms of the study notes the course is built from, with their English "
        "names. Written by `dlcourse.course.glossary_document()`; edit `dlcourse/course.py`, "
        "not this file.\n\n"
        f"{glossary_markdown()}\n"
    )


def write_docs(root: str | None = None) -> None:
    """Rewrite ``docs/course-map.md`` and ``docs/glossary.md`` from this module (``make docs``)."""
    from pathlib import Path

    docs = Path(root) if root else Path(__file__).resolve().parent.parent / "docs"
    (docs / "course-map.md").write_text(course_map_document(), encoding="utf-8")
    (docs / "glossary.md").write_text(glossary_document(), encoding="utf-8")
