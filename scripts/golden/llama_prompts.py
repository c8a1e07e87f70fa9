"""Prompts for the SmolLM2 decoder golden files (shared by llama_greedy.py and
llama_reference.py, so both agree on the list and its order).

The first FULL_LOGITS prompts are the ones whose whole first-step logits are written (by
llama.cpp in llama_greedy.py and by the numpy reference in llama_reference.py): all of them,
so the decoder's error against the float64 reference can be judged as a distribution over
every prompt beside llama.cpp's own error on the same prompts (tests/tests/generate.rs). Chat prompts follow SmolLM2-135M-Instruct's ChatML template (the GGUF's
`tokenizer.chat_template`): a default system turn when the first message is not a system one,
`<|im_start|>{role}\\n{content}<|im_end|>\\n` per message, and `<|im_start|>assistant\\n` as the
generation prompt.
"""

DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"



def chatml(*messages):
    """SmolLM2's chat template with add_generation_prompt=True; `messages` are (role, content)."""
    out = ""
    if not messages or messages[0][0] != "system":
        out += f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"
    for role, content in messages:
        out += f"<|im_start|>{role}\n{content}<|im_end|>\n"
    return out + "<|im_start|>assistant\n"


PROMPTS = [
    # --- first: plain, chat, digits, non-ASCII ---
    "The capital of France is",
    chatml(("user", "What is the capital of France?")),
    "1, 2, 3, 4, 5, 6,",
    "Le café de la Tour Eiffel est très",
    # --- plain completions ---
    "The quick brown fox",
    "Hello",
    "Once upon a time, there was a little robot who",
    "Question: What is the largest planet in our solar system?\nAnswer:",
    "Water boils at 100 degrees Celsius, which is",
    # --- digits and arithmetic ---
    "In 1969, Neil Armstrong",
    "2 + 2 = 4. 3 + 5 =",
    "Email: john.doe@example.com\nPhone: +1 (555) 0123-",
    # --- code ---
    "def fibonacci(n):\n    ",
    "import numpy as np\n\ndef softmax(x):\n",
    'fn main() {\n    println!("',
    "SELECT name, age FROM users WHERE",
    "    return x  # TODO:\t",
    # --- non-ASCII and emoji ---
    "Ich heiße Jürgen und wohne in München, wo",
    "東京は日本の首都で",
    "Привет, как дела?",
    "I love pizza 🍕 and",
    "😀😃😄",
    # --- chat ---
    chatml(("user", "Turn on the kitchen lights.")),
    chatml(("user", "Set a timer for 10 minutes.")),
    chatml(
        ("system", "You are a smart home assistant. Reply in one short sentence."),
        ("user", "What's the weather like tomorrow in Zürich?"),
    ),
    chatml(
        ("user", "Hi!"),
        ("assistant", "Hello! How can I help you today?"),
        ("user", "Tell me a joke about cats."),
    ),
]

# How many of the first PROMPTS get their full first-step logits written.
FULL_LOGITS = len(PROMPTS)
