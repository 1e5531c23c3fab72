"""A fixed sentence set for the MiniLM port check and the pruned-model quality table.

``PAIRS``: (sentence a, sentence b, similarity label 0-5), written and labelled for this
project by its authors (not a published benchmark): paraphrases (4-5), related (2-3) and
unrelated (0-1) pairs. Quality scores computed on them: Spearman correlation of the cosine
similarity with the labels, and paraphrase retrieval (top-1: does sentence a find its own b
among all b's, for pairs labelled >= 4).
"""

PAIRS = [
    ("A man is eating food.", "A man is eating a piece of bread.", 4),
    ("A man is playing a guitar.", "Someone plays the guitar.", 5),
    ("The girl is carrying a baby.", "A girl holds an infant in her arms.", 4),
    ("A woman is slicing an onion.", "Someone is cutting an onion with a knife.", 5),
    ("Two dogs are running through a field.", "A pair of dogs run across the grass.", 5),
    ("The stock market fell sharply today.", "Shares dropped steeply in today's trading.", 5),
    ("The cat sleeps on the windowsill.", "A cat is napping by the window.", 4),
    ("He is driving a red car.", "A man drives a red automobile.", 5),
    ("The train was delayed by snow.", "Snowfall made the train late.", 5),
    ("Children are playing football in the park.", "Kids play soccer at the park.", 5),
    ("She is reading a book in the library.", "A woman reads in the library.", 4),
    ("The chef is preparing pasta.", "A cook makes spaghetti in the kitchen.", 4),
    ("A man is playing a guitar.", "A man is playing a violin.", 2),
    ("The stock market fell sharply today.", "The bakery sells fresh bread every morning.", 0),
    ("A woman is slicing an onion.", "A woman is slicing a tomato.", 3),
    ("Two dogs are running through a field.", "A horse is grazing in a meadow.", 1),
    ("He is driving a red car.", "He is washing his red car.", 3),
    ("The train was delayed by snow.", "The flight was cancelled because of fog.", 2),
    ("The cat sleeps on the windowsill.", "The dog barks at the mailman.", 1),
    ("Children are playing football in the park.", "Quantum computers use qubits.", 0),
    ("She is reading a book in the library.", "She is writing a letter at her desk.", 2),
    ("The chef is preparing pasta.", "The mechanic is repairing an engine.", 0),
    ("A man is eating food.", "The sun sets over the ocean.", 0),
    ("The girl is carrying a baby.", "The boy is carrying a heavy box.", 2),
    ("Python is a popular programming language.", "Many developers write code in Python.", 4),
    ("Python is a popular programming language.", "A python is a large snake.", 1),
    ("It will rain tomorrow afternoon.", "Rain is expected tomorrow after lunch.", 5),
    ("It will rain tomorrow afternoon.", "Yesterday was sunny and warm.", 1),
    ("The museum opens at nine o'clock.", "The gallery's doors open at 9 am.", 5),
    ("The museum opens at nine o'clock.", "The museum has a new dinosaur exhibit.", 2),
    ("Please turn off the lights when you leave.", "Switch the lights off as you go out.", 5),
    ("Please turn off the lights when you leave.", "The lights in the stadium are very bright.", 1),
]

SENTENCES = sorted({s for a, b, _ in PAIRS for s in (a, b)})
